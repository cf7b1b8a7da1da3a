# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A Redis ACL user limited to one key prefix, over the local Unix socket: redis_acl_user and env_tree."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import socket

COMMAND_RULES = ('+@all', '-@dangerous', '-dbsize', '-randomkey', '-scan')
# How a module reaches Redis as its admin (redis_acl_user's options, env_tree's redis suboptions).
ADMIN_ARGSPEC = dict(
    socket=dict(type='path', default='/run/redis/redis-server.sock'),
    admin_user=dict(type='str', default='pressluft-admin'),
    admin_password_file=dict(type='path', default='/etc/redis/pressluft-admin.pass', no_log=False),
)


class RedisError(Exception):
    pass


class AdminPasswordError(RedisError):
    """The admin password file cannot be read."""


class Redis(object):
    """The few RESP2 exchanges this module needs, over a Unix socket."""

    def __init__(self, path, timeout=10):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b''

    def call(self, *args):
        out = [b'*%d\r\n' % len(args)]
        for a in args:
            a = a.encode('utf-8') if not isinstance(a, bytes) else a
            out.append(b'$%d\r\n%s\r\n' % (len(a), a))
        self.sock.sendall(b''.join(out))
        return self._reply()

    def _line(self):
        while b'\r\n' not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RedisError('connection closed by Redis')
            self.buf += chunk
        line, self.buf = self.buf.split(b'\r\n', 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RedisError('connection closed by Redis')
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b'+':
            return rest.decode()
        if kind == b'-':
            raise RedisError(rest.decode())
        if kind == b':':
            return int(rest)
        if kind == b'$':
            n = int(rest)
            return None if n < 0 else self._exact(n).decode('utf-8', 'replace')
        if kind == b'*':
            n = int(rest)
            return None if n < 0 else [self._reply() for dummy in range(n)]
        raise RedisError('unexpected reply %r' % line[:40])


def wanted_line(name, password, pattern):
    digest = hashlib.sha256(password.encode('utf-8')).hexdigest()
    return ' '.join(('user', name, 'on', 'sanitize-payload', '#' + digest, '~' + pattern, 'resetchannels',
                     *COMMAND_RULES))


def same_acl(have, want):
    """Redis may reorder single-command rules when it stores them: compare the rules as a set."""
    return sorted(have.split(' ')) == sorted(want.split(' '))


def current_line(redis, name):
    for line in redis.call('ACL', 'LIST'):
        if line.split(' ', 2)[1:2] == [name]:
            return line
    return ''


def valid_name(name):
    return bool(name) and not any(c.isspace() or c in '<>~&#%' for c in name)


def admin_connection(path, admin_user, admin_password_file):
    """A connection authenticated as the admin user (password read from its file, never an argument)."""
    try:
        with open(admin_password_file) as f:
            admin_password = f.readline().strip()
    except (IOError, OSError) as exc:
        raise AdminPasswordError('cannot read the Redis admin password: %s' % exc) from None
    redis = Redis(path)
    redis.call('AUTH', admin_user, admin_password)
    return redis


def ensure_user(redis, name, password, pattern, check_mode):
    """Converge the ACL of user name; return (changed, the wanted ACL line)."""
    want = wanted_line(name, password, pattern)
    changed = not same_acl(current_line(redis, name), want)
    if changed and not check_mode:
        digest = want.split(' ')[4]
        redis.call('ACL', 'SETUSER', name, 'reset', 'on', digest, '~' + pattern, 'resetchannels',
                   *COMMAND_RULES)
        redis.call('ACL', 'SAVE')
        if not same_acl(current_line(redis, name), want):
            raise RedisError('Redis stored another ACL than the one wanted')
    return changed, want


def remove_user(redis, name, check_mode):
    changed = bool(current_line(redis, name))
    if changed and not check_mode:
        redis.call('ACL', 'DELUSER', name)
        redis.call('ACL', 'SAVE')
    return changed

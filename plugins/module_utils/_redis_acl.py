# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A Redis ACL user limited to one key prefix and one logical database, over the local Unix socket.

Used by redis_acl_user and env_tree. Why a database per user (docs/cache.md, "Object cache"): the Redis
Object Cache plugin flushes selectively with SCAN MATCH <prefix>*, and SCAN lists every key name of the
database it runs in whatever the user's key patterns say. Each user may SELECT only its own database
(+select|N), so its SCAN sees its own keys and nothing else; database 0, where every connection starts,
is never given to anybody and stays empty.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fcntl
import hashlib
import re
import socket

# +info: the plugin reads the server version at connect (INFO says other databases' key counts, no names).
# -move -copy: both can write into another database. KEYS, FLUSHDB, FLUSHALL, SWAPDB are in @dangerous.
COMMAND_RULES = ('+@all', '-@dangerous', '-dbsize', '-randomkey', '+info', '-move', '-copy', '-select')
PROBE_USER = 'pressluft-acl-probe'
SELECT_RE = re.compile(r'^\+select\|([0-9]+)$')
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


def rules(password, pattern, database):
    """The ACL SETUSER arguments after the user name (the password as its SHA-256 hash)."""
    digest = hashlib.sha256(password.encode('utf-8')).hexdigest()
    return ['reset', 'on', '#' + digest, '~' + pattern, 'resetchannels', *COMMAND_RULES,
            '+select|%d' % database]


def same_acl(have, want):
    """Redis may reorder single-command rules when it stores them: compare the rules as a set."""
    return sorted(have.split(' ')) == sorted(want.split(' '))


def stored_form(redis, name, args):
    """The line Redis stores for these rules: it rewrites -@dangerous into its commands once a rule
    re-allows one of them (+info), and how depends on its version; a disabled probe user shows it."""
    redis.call('ACL', 'SETUSER', PROBE_USER, *['off' if a == 'on' else a for a in args])
    try:
        line = current_line(redis, PROBE_USER)
    finally:
        redis.call('ACL', 'DELUSER', PROBE_USER)
    parts = line.split(' ')
    parts[1:3] = [name, 'on']  # "user pressluft-acl-probe off ..."
    return ' '.join(parts)


def user_database(line):
    for rule in line.split(' '):
        m = SELECT_RE.match(rule)
        if m:
            return int(m.group(1))
    return None


def choose_database(redis, name):
    """The user's database if it has one, else the lowest one no other user has (never 0)."""
    taken = {}
    for line in redis.call('ACL', 'LIST'):
        db = user_database(line)
        if db is not None:
            taken.setdefault(db, line.split(' ', 2)[1])
    for db, user in taken.items():
        if user == name:
            return db
    count = int(redis.call('CONFIG', 'GET', 'databases')[1])
    for db in range(1, count):
        if db not in taken:
            return db
    raise RedisError('all %d Redis databases are taken: raise node_redis_databases' % (count - 1))


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
    # Two jobs of two sites may run on one node at once: one at a time chooses a database (the lock goes
    # with the module's process).
    redis = Redis(path)
    redis.lock = open(admin_password_file)
    fcntl.flock(redis.lock, fcntl.LOCK_EX)
    redis.call('AUTH', admin_user, admin_password)
    return redis


def ensure_user(redis, name, password, pattern, check_mode):
    """Converge the ACL of user name; return (changed, the wanted ACL line, its database)."""
    database = choose_database(redis, name)
    args = rules(password, pattern, database)
    want = stored_form(redis, name, args)
    have = current_line(redis, name)
    changed = not same_acl(have, want)
    if changed and not check_mode:
        if user_database(have) != database:
            empty_database(redis, database)  # a new owner never sees what a removed user left
        redis.call('ACL', 'SETUSER', name, *args)
        redis.call('ACL', 'SAVE')
        if not same_acl(current_line(redis, name), want):
            raise RedisError('Redis stored another ACL than the one wanted')
    return changed, want, database


def empty_database(redis, database):
    redis.call('SELECT', str(database))
    try:
        redis.call('FLUSHDB')
    finally:
        redis.call('SELECT', '0')


def remove_user(redis, name, check_mode):
    """Remove the user and empty its database (the next environment given it must not list these keys)."""
    line = current_line(redis, name)
    changed = bool(line)
    if changed and not check_mode:
        database = user_database(line)
        if database:
            empty_database(redis, database)
        redis.call('ACL', 'DELUSER', name)
        redis.call('ACL', 'SAVE')
    return changed

#!/usr/bin/python
# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: redis_acl_user
short_description: Manage a Redis ACL user limited to one key prefix
description:
  - Connects to the local Redis over its Unix socket as the admin user whose password is read from
    O(admin_password_file) (never passed on a command line), compares the user's current ACL with the
    wanted one and only then runs C(ACL SETUSER) or C(ACL DELUSER) followed by C(ACL SAVE).
  - The user gets C(+@all -@dangerous) minus the commands that reveal other users' key names
    (C(SCAN), C(RANDOMKEY), C(DBSIZE)), no Pub/Sub channels, and only keys matching O(key_pattern).
  - The password is sent as its SHA-256 hash.
version_added: "1.0.0"
author:
  - Pressluft developers (@pressluft)
extends_documentation_fragment:
  - pressluft.wordpress.fencing
options:
  name:
    description: ACL user name.
    type: str
    required: true
  password:
    description: Password of the user; required with O(state=present).
    type: str
  key_pattern:
    description: Key pattern the user may access; defaults to C(<name>:*).
    type: str
  state:
    description: Whether the user exists.
    type: str
    choices: [present, absent]
    default: present
  socket:
    description: Redis Unix socket.
    type: path
    default: /run/redis/redis-server.sock
  admin_user:
    description: Redis ACL user allowed to manage users.
    type: str
    default: pressluft-admin
  admin_password_file:
    description: File holding the admin user's password (first line).
    type: path
    default: /etc/redis/pressluft-admin.pass
  site:
    description: Site whose fencing token is checked; required when O(fencing_token) is set.
    type: str
attributes:
  check_mode:
    description: Can run in check mode and predict changes without modifying the target.
    support: full
  diff_mode:
    description: Returns details on what has changed in diff mode.
    support: none
'''

EXAMPLES = r'''
- name: Redis user of shop/production
  pressluft.wordpress.redis_acl_user:
    name: shop_production
    password: "{{ shop_secrets.secrets.redis_password }}"
    site: shop
    fencing_token: "{{ pressluft_fencing_token | default(omit) }}"
  no_log: true
'''

RETURN = r'''
acl:
  description: The user's ACL rule line after the run (password hash included), empty when absent.
  returned: always
  type: str
  sample: user shop_production on sanitize-payload #5e88... ~shop_production:* resetchannels +@all -@dangerous
'''

import hashlib
import socket

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pressluft.wordpress.plugins.module_utils._fencing import FENCING_ARGSPEC, fence

COMMAND_RULES = ('+@all', '-@dangerous', '-dbsize', '-randomkey', '-scan')


class RedisError(Exception):
    pass


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


def main():
    argument_spec = dict(
        name=dict(type='str', required=True),
        password=dict(type='str', no_log=True),
        key_pattern=dict(type='str', no_log=False),
        state=dict(type='str', choices=['present', 'absent'], default='present'),
        socket=dict(type='path', default='/run/redis/redis-server.sock'),
        admin_user=dict(type='str', default='pressluft-admin'),
        admin_password_file=dict(type='path', default='/etc/redis/pressluft-admin.pass', no_log=False),
        site=dict(type='str'),
    )
    argument_spec.update(FENCING_ARGSPEC)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           required_if=[('state', 'present', ('password',))],
                           required_by={'fencing_token': ('site',)})
    p = module.params
    name = p['name']
    if not name or any(c.isspace() or c in '<>~&#%' for c in name):
        module.fail_json(msg='invalid Redis user name %r' % name)
    fence(module, p['site'])
    try:
        with open(p['admin_password_file']) as f:
            admin_password = f.readline().strip()
    except (IOError, OSError) as exc:
        module.fail_json(msg='cannot read the Redis admin password: %s' % exc)
    try:
        redis = Redis(p['socket'])
        redis.call('AUTH', p['admin_user'], admin_password)
        before = current_line(redis, name)
        if p['state'] == 'absent':
            changed = bool(before)
            if changed and not module.check_mode:
                redis.call('ACL', 'DELUSER', name)
                redis.call('ACL', 'SAVE')
            module.exit_json(changed=changed, acl='')
        pattern = p['key_pattern'] or name + ':*'
        want = wanted_line(name, p['password'], pattern)
        changed = not same_acl(before, want)
        if changed and not module.check_mode:
            digest = want.split(' ')[4]
            redis.call('ACL', 'SETUSER', name, 'reset', 'on', digest, '~' + pattern, 'resetchannels',
                       *COMMAND_RULES)
            redis.call('ACL', 'SAVE')
            before = current_line(redis, name)
            if not same_acl(before, want):
                module.fail_json(msg='Redis stored another ACL than the one wanted')
        module.exit_json(changed=changed, acl=want)
    except (RedisError, socket.error) as exc:
        module.fail_json(msg='Redis (%s): %s' % (p['socket'], exc))


if __name__ == '__main__':
    main()

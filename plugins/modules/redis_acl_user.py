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
  - The user gets one logical database of its own (kept across runs, else the lowest one no other user
    has; never 0) and may C(SELECT) no other, so C(SCAN) there lists its own keys only.
  - Its commands are C(+@all -@dangerous) plus C(INFO), minus C(DBSIZE), C(RANDOMKEY), C(MOVE) and C(COPY)
    (the last two can write into another database); no Pub/Sub channels; only keys matching O(key_pattern).
  - The password is sent as its SHA-256 hash.
version_added: "1.0.0"
author:
  - Pressluft developers (@pressluft)
extends_documentation_fragment:
  - pressluft.wordpress.attributes
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
    support: full
  diff_mode:
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
  sample: user shop_production on sanitize-payload #5e88... ~shop_production:* resetchannels +@all -@admin ...
database:
  description: The user's logical database (C(WP_REDIS_DATABASE)), none when absent.
  returned: always
  type: int
  sample: 3
'''

import socket

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pressluft.wordpress.plugins.module_utils._fencing import FENCING_ARGSPEC, fence
from ansible_collections.pressluft.wordpress.plugins.module_utils._redis_acl import (
    ADMIN_ARGSPEC,
    AdminPasswordError,
    RedisError,
    admin_connection,
    ensure_user,
    remove_user,
    valid_name,
)


def main():
    argument_spec = dict(
        name=dict(type='str', required=True),
        password=dict(type='str', no_log=True),
        key_pattern=dict(type='str', no_log=False),
        state=dict(type='str', choices=['present', 'absent'], default='present'),
        site=dict(type='str'),
    )
    argument_spec.update(ADMIN_ARGSPEC)
    argument_spec.update(FENCING_ARGSPEC)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           required_if=[('state', 'present', ('password',))],
                           required_by={'fencing_token': ('site',)})
    p = module.params
    name = p['name']
    if not valid_name(name):
        module.fail_json(msg='invalid Redis user name %r' % name)
    fence(module, p['site'])
    try:
        redis = admin_connection(p['socket'], p['admin_user'], p['admin_password_file'])
        if p['state'] == 'absent':
            module.exit_json(changed=remove_user(redis, name, module.check_mode), acl='', database=None)
        pattern = p['key_pattern'] or name + ':*'
        changed, want, database = ensure_user(redis, name, p['password'], pattern, module.check_mode)
        module.exit_json(changed=changed, acl=want, database=database)
    except AdminPasswordError as exc:
        module.fail_json(msg=str(exc))
    except (RedisError, socket.error) as exc:
        module.fail_json(msg='Redis (%s): %s' % (p['socket'], exc))


if __name__ == '__main__':
    main()

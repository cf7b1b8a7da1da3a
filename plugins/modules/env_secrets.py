#!/usr/bin/python
# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: env_secrets
short_description: Keep the secrets of a Pressluft environment in its node secrets file
description:
  - Checks the fencing token of the site first, so a stale job changes nothing.
  - With O(state=present) creates C(/etc/pressluft/secrets/<site>_<env>.json) (mode C(0600), owner root)
    holding a generated database password, Redis password, WordPress administrator password and
    WordPress salts, once;
    later runs keep every existing value and only add missing ones.
  - The secrets are returned, so use C(no_log) on the task.
  - With O(state=absent) removes the file.
version_added: "1.0.0"
author:
  - Pressluft developers (@pressluft)
extends_documentation_fragment:
  - pressluft.wordpress.fencing
options:
  site:
    description: Site name (see the Pressluft name contract).
    type: str
    required: true
  env:
    description: Environment name.
    type: str
    default: production
  state:
    description: Whether the secrets file exists.
    type: str
    choices: [present, absent]
    default: present
  secrets_dir:
    description: Directory of the secrets files, created C(0700) root when missing.
    type: path
    default: /etc/pressluft/secrets
  initial_secrets:
    description:
      - Values to use instead of generated ones for keys the file does not hold yet, for example
        the passwords the Pressluft control plane keeps in its secret store.
      - Only C(db_password), C(redis_password) and C(wp_admin_password) are accepted.
        A value already in the file is never replaced.
    type: dict
    default: {}
attributes:
  check_mode:
    description: Can run in check mode and predict changes without modifying the target.
    support: full
  diff_mode:
    description: Returns details on what has changed in diff mode.
    support: none
'''

EXAMPLES = r'''
- name: Ensure the secrets of shop/production
  pressluft.wordpress.env_secrets:
    site: shop
    env: production
    fencing_token: "{{ pressluft_fencing_token | default(omit) }}"
  register: shop_secrets
  no_log: true
'''

RETURN = r'''
path:
  description: Path of the secrets file.
  returned: always
  type: str
  sample: /etc/pressluft/secrets/shop_production.json
secrets:
  description: The secrets (db_password, redis_password, wp_admin_password, salts) of the environment.
  returned: when O(state=present)
  type: dict
  sample: {"db_password": "...", "redis_password": "...", "salts": {"AUTH_KEY": "..."}}
'''

import json
import os
import secrets as pysecrets
import string

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pressluft.wordpress.plugins.module_utils._atomic import write_file
from ansible_collections.pressluft.wordpress.plugins.module_utils._fencing import FENCING_ARGSPEC, fence
from ansible_collections.pressluft.wordpress.plugins.module_utils._names import env_names

SALT_KEYS = ('AUTH_KEY', 'SECURE_AUTH_KEY', 'LOGGED_IN_KEY', 'NONCE_KEY',
             'AUTH_SALT', 'SECURE_AUTH_SALT', 'LOGGED_IN_SALT', 'NONCE_SALT')
# No quotes or backslashes: the values go into PHP string literals in wp-config.php.
SALT_ALPHABET = string.ascii_letters + string.digits + '!#%&()*+,-.:;<=>?@[]^_{|}~'


def _token(length, alphabet=string.ascii_letters + string.digits):
    return ''.join(pysecrets.choice(alphabet) for dummy in range(length))


PASSWORD_KEYS = ('db_password', 'redis_password', 'wp_admin_password')


def _complete(data, initial):
    """Add missing values to data in place (from initial, else generated); True when something was added."""
    added = False
    for key in PASSWORD_KEYS:
        if not isinstance(data.get(key), str) or not data[key]:
            data[key] = initial.get(key) or _token(32)
            added = True
    salts = data.get('salts')
    if not isinstance(salts, dict):
        salts = data['salts'] = {}
    for key in SALT_KEYS:
        if not isinstance(salts.get(key), str) or not salts[key]:
            salts[key] = _token(64, SALT_ALPHABET)
            added = True
    return added


def _write(path, data):
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o700)
    os.chmod(directory, 0o700)
    text = json.dumps(data, indent=2, sort_keys=True) + '\n'
    write_file(path, text.encode('utf-8'), os.geteuid(), os.getegid(), 0o600)


def main():
    argument_spec = dict(
        site=dict(type='str', required=True),
        env=dict(type='str', default='production'),
        state=dict(type='str', choices=['present', 'absent'], default='present'),
        secrets_dir=dict(type='path', default='/etc/pressluft/secrets'),
        initial_secrets=dict(type='dict', default={}, no_log=True),
    )
    argument_spec.update(FENCING_ARGSPEC)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    try:
        names = env_names(p['site'], p['env'])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    initial = p['initial_secrets']
    unknown = sorted(set(initial) - set(PASSWORD_KEYS))
    if unknown:
        module.fail_json(msg='initial_secrets accepts only %s, not %s'
                             % (', '.join(PASSWORD_KEYS), ', '.join(unknown)))
    for key, value in initial.items():
        if not isinstance(value, str) or len(value) < 16 or any(c in value for c in '\'"\\\n'):
            module.fail_json(msg='initial_secrets.%s must be a string of at least 16 characters '
                                 'without quotes, backslashes or newlines' % key)
    fence(module, p['site'])
    path = os.path.join(p['secrets_dir'], names['name'] + '.json')

    if p['state'] == 'absent':
        changed = os.path.exists(path)
        if changed and not module.check_mode:
            os.unlink(path)
        module.exit_json(changed=changed, path=path)

    data = {}
    if os.path.exists(path):
        try:
            with open(path) as f:
                data = json.load(f)
        except ValueError:
            module.fail_json(msg='%s is not valid JSON: fix or remove it by hand' % path, path=path)
        if not isinstance(data, dict):
            module.fail_json(msg='%s does not hold a JSON object' % path, path=path)
    changed = _complete(data, initial)
    st = os.stat(path) if os.path.exists(path) else None
    if st is not None and (st.st_mode & 0o777 != 0o600 or st.st_uid != 0):
        changed = True
    if changed and not module.check_mode:
        _write(path, data)
    module.exit_json(changed=changed, path=path, secrets=data)


if __name__ == '__main__':
    main()

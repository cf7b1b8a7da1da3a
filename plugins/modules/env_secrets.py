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
      - Not a no_log option, since the module returns the secrets anyway (Ansible would otherwise mask
        the returned values equal to these); use C(no_log) on the task, which also keeps them out of
        the node's log.
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

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pressluft.wordpress.plugins.module_utils._fencing import FENCING_ARGSPEC, fence
from ansible_collections.pressluft.wordpress.plugins.module_utils._names import env_names
from ansible_collections.pressluft.wordpress.plugins.module_utils._secrets import (
    SECRETS_ARGSPEC,
    SecretsError,
    check_initial,
    ensure,
)


def main():
    argument_spec = dict(
        site=dict(type='str', required=True),
        env=dict(type='str', default='production'),
        state=dict(type='str', choices=['present', 'absent'], default='present'),
    )
    argument_spec.update(SECRETS_ARGSPEC)
    argument_spec.update(FENCING_ARGSPEC)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    try:
        names = env_names(p['site'], p['env'])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    try:
        check_initial(p['initial_secrets'])
    except SecretsError as exc:
        module.fail_json(msg=str(exc))
    fence(module, p['site'])
    path = os.path.join(p['secrets_dir'], names['name'] + '.json')

    if p['state'] == 'absent':
        changed = os.path.exists(path)
        if changed and not module.check_mode:
            os.unlink(path)
        module.exit_json(changed=changed, path=path)

    try:
        changed, data = ensure(path, p['initial_secrets'], module.check_mode)
    except SecretsError as exc:
        module.fail_json(msg=str(exc), path=path)
    module.exit_json(changed=changed, path=path, secrets=data)


if __name__ == '__main__':
    main()

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
    later runs keep every existing value and only add missing ones. A file written by an earlier
    version (key C(wp_admin_password)) gets its key renamed to C(wordpress_admin_password).
  - The secrets are returned, so use C(no_log) on the task.
  - With O(state=absent) removes the file.
version_added: "1.0.0"
author:
  - Pressluft developers (@pressluft)
extends_documentation_fragment:
  - pressluft.wordpress.attributes
  - pressluft.wordpress.env
  - pressluft.wordpress.fencing
  - pressluft.wordpress.secrets
options:
  state:
    description: Whether the secrets file exists.
    type: str
    choices: [present, absent]
    default: present
attributes:
  check_mode:
    support: full
  diff_mode:
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
  description: The secrets (db_password, redis_password, wordpress_admin_password, salts) of the environment.
  returned: when O(state=present)
  type: dict
  sample: {"db_password": "...", "redis_password": "...", "salts": {"AUTH_KEY": "..."}}
'''

import os

from ansible_collections.pressluft.wordpress.plugins.module_utils._env import env_module
from ansible_collections.pressluft.wordpress.plugins.module_utils._secrets import (
    SECRETS_ARGSPEC,
    SecretsError,
    check_initial,
    ensure,
)


def _check(p, names):
    check_initial(p['initial_secrets'])  # a SecretsError is a ValueError


def main():
    argument_spec = dict(
        state=dict(type='str', choices=['present', 'absent'], default='present'),
    )
    argument_spec.update(SECRETS_ARGSPEC)
    module, names = env_module(argument_spec, check=_check)
    p = module.params
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

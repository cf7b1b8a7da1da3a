#!/usr/bin/python
# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: site_incarnation
short_description: Record or retire a site incarnation in the node's fencing record
description:
  - Checks the fencing token of the site like every fenced module, and records it.
  - With O(state=retired), marks the incarnation retired once the site is deleted, so that a site
    re-created under the name (a new incarnation, from this or another control plane) is accepted,
    while a late job of the deleted incarnation stays refused.
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
  state:
    description: V(present) checks and records the token; V(retired) also marks the incarnation retired.
    type: str
    choices: [present, retired]
    default: present
notes:
  - O(fencing_token) is required.
attributes:
  check_mode:
    description: Can run in check mode and predict changes without modifying the target.
    support: full
  diff_mode:
    description: Returns details on what has changed in diff mode.
    support: none
seealso:
  - module: pressluft.wordpress.site_incarnation_info
'''

EXAMPLES = r'''
- name: Retire the site's incarnation after deleting it
  pressluft.wordpress.site_incarnation:
    site: shop
    state: retired
    fencing_token: "{{ pressluft_fencing_token }}"
    fencing_incarnation: "{{ pressluft_fencing_incarnation | default(omit) }}"
    fencing_run: "{{ pressluft_fencing_run | default(omit) }}"
'''

RETURN = r'''
record:
  description: The site's fencing record before this task (null when the node had none).
  returned: always
  type: dict
  sample: {"token": 7, "incarnation": "3f9c2a7d1e4b6a08", "run": "a1b2c3d4e5f60718", "retired": false}
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pressluft.wordpress.plugins.module_utils._fencing import (
    FENCING_ARGSPEC,
    fence,
    read_record,
)


def main():
    argument_spec = dict(
        site=dict(type='str', required=True),
        state=dict(type='str', choices=['present', 'retired'], default='present'),
    )
    argument_spec.update(FENCING_ARGSPEC)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           required_if=[('state', 'present', ('fencing_token',)),
                                        ('state', 'retired', ('fencing_token',))])
    p = module.params
    before = read_record(module, p['site'])
    fence(module, p['site'], retire=p['state'] == 'retired')
    wanted = dict(token=p['fencing_token'], incarnation=p['fencing_incarnation'], run=p['fencing_run'],
                  retired=p['state'] == 'retired')
    module.exit_json(changed=before != wanted, record=before)


if __name__ == '__main__':
    main()

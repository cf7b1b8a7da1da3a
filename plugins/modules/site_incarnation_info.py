#!/usr/bin/python
# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: site_incarnation_info
short_description: Read a site's fencing record on the node
description:
  - Returns the site incarnation, the last fencing token applied to the site and whether the
    incarnation was retired, as the node's fencing record holds them. Changes nothing.
  - C(pressluft site adopt) runs it to bring a control plane that is behind the node forward.
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
notes:
  - The fencing options other than O(fencing_dir) are accepted and ignored, so the option set is
    the one of every fenced module.
attributes:
  check_mode:
    description: Can run in check mode and predict changes without modifying the target.
    support: full
  diff_mode:
    description: Returns details on what has changed in diff mode.
    support: none
seealso:
  - module: pressluft.wordpress.site_incarnation
'''

EXAMPLES = r'''
- name: Read what the node knows about site shop
  pressluft.wordpress.site_incarnation_info:
    site: shop
  register: shop_fencing
'''

RETURN = r'''
record:
  description: The site's fencing record; null when the node has none. C(incarnation) and C(run) are
    null in a record written before incarnations existed.
  returned: always
  type: dict
  sample: {"token": 7, "incarnation": "3f9c2a7d1e4b6a08", "run": "a1b2c3d4e5f60718", "retired": false}
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pressluft.wordpress.plugins.module_utils._fencing import FENCING_ARGSPEC, read_record


def main():
    argument_spec = dict(site=dict(type='str', required=True))
    argument_spec.update(FENCING_ARGSPEC)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    module.exit_json(changed=False, record=read_record(module, module.params['site']))


if __name__ == '__main__':
    main()

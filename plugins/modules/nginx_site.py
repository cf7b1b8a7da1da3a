#!/usr/bin/python
# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: nginx_site
short_description: Write or remove the nginx server block of a Pressluft environment
description:
  - Checks the fencing token of the site first, so a stale job changes nothing.
  - Writes C(/etc/nginx/pressluft-sites/<site>_<env>.conf) (root, C(0644)) with O(content) in one
    atomic rename, only when it differs; one module run where C(ansible.builtin.template) needs a stat,
    a file transfer and a copy.
  - Does not reload nginx; the role does that once for all its changes (M(pressluft.wordpress.reload_marker)).
version_added: "1.0.0"
author:
  - Pressluft developers (@pressluft)
extends_documentation_fragment:
  - pressluft.wordpress.attributes
  - pressluft.wordpress.env
  - pressluft.wordpress.fencing
options:
  state:
    description: Whether the server block exists.
    type: str
    choices: [present, absent]
    default: present
  content:
    description: The server block; required with O(state=present).
    type: str
  sites_dir:
    description: Directory of the server blocks, included by the node's nginx configuration.
    type: path
    default: /etc/nginx/pressluft-sites
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
'''

EXAMPLES = r'''
- name: Write the server block of shop/production
  pressluft.wordpress.nginx_site:
    site: shop
    env: production
    content: "{{ lookup('ansible.builtin.template', 'nginx-site.conf.j2') }}"
    fencing_token: "{{ pressluft_fencing_token | default(omit) }}"
'''

RETURN = r'''
path:
  description: Path of the server block.
  returned: always
  type: str
  sample: /etc/nginx/pressluft-sites/shop_production.conf
'''

import os

from ansible_collections.pressluft.wordpress.plugins.module_utils._atomic import file_differs, write_file
from ansible_collections.pressluft.wordpress.plugins.module_utils._env import env_module


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except (OSError, IOError):
        return ''


def _check(p, names):
    if p['state'] == 'present' and not os.path.isdir(p['sites_dir']):
        raise ValueError('%s does not exist: provision the node first (node_provision.yml)' % p['sites_dir'])


def main():
    argument_spec = dict(
        state=dict(type='str', choices=['present', 'absent'], default='present'),
        content=dict(type='str'),
        sites_dir=dict(type='path', default='/etc/nginx/pressluft-sites'),
    )
    module, names = env_module(argument_spec, check=_check, required_if=[('state', 'present', ['content'])])
    p = module.params
    path = os.path.join(p['sites_dir'], names['name'] + '.conf')

    before = _read(path)
    if p['state'] == 'absent':
        changed = os.path.lexists(path)
        if changed and not module.check_mode:
            os.unlink(path)
        after = ''
    else:
        data = p['content'].encode('utf-8')
        changed = file_differs(path, data, 0, 0, 0o644)
        if changed and not module.check_mode:
            write_file(path, data, 0, 0, 0o644)
        after = p['content']
    result = dict(changed=changed, path=path)
    if module._diff and changed:
        result['diff'] = dict(before=before, after=after, before_header=path, after_header=path)
    module.exit_json(**result)


if __name__ == '__main__':
    main()

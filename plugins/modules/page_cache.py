#!/usr/bin/python
# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: page_cache
short_description: Switch the nginx page cache of a Pressluft environment on or off
description:
  - Checks the fencing token of the site first, so a stale job changes nothing.
  - Writes the environment's zone file C(/etc/nginx/conf.d/pressluft-cache-<site>_<env>.conf)
    (C(fastcgi_cache_path) of its own directory C(/var/cache/pressluft/page/<site>_<env>) and zone
    C(pressluft_<site>_<env>)) and the switch C(/etc/nginx/pressluft-cache/<site>_<env>.conf) that the
    server block includes; both root, C(0644), written atomically and only when they differ.
  - Enabled, the switch holds the cache rules (bypass for anything but anonymous GET/HEAD without a query,
    never store a response that sets a cookie, header C(X-Cache)); disabled, it holds a comment only.
  - Creates the cache directory's parent root-owned C(0755); nginx creates the directory itself, owned by
    its worker user, C(0700), so the environment's PHP user can neither read nor write the cache.
  - Does not reload nginx; the role does (M(pressluft.wordpress.reload_marker)).
version_added: "1.0.0"
author:
  - Pressluft developers (@pressluft)
extends_documentation_fragment:
  - pressluft.wordpress.attributes
  - pressluft.wordpress.env
  - pressluft.wordpress.fencing
options:
  state:
    description:
      - V(enabled) or V(disabled) the cache; V(absent) removes both files and the cache directory.
    type: str
    choices: [enabled, disabled, absent]
    default: enabled
  force:
    description:
      - With V(false), an existing switch is kept as it is (role site_env creates a disabled one for a
        new environment without undoing C(pressluft cache enable) when it converges an old one).
    type: bool
    default: true
  valid:
    description: How long a cached page is served (C(fastcgi_cache_valid) of 200, 301 and 302).
    type: str
    default: 10m
  keys_zone_size:
    description: Shared memory of the zone's keys (1m holds about 8000 pages).
    type: str
    default: 4m
  max_size:
    description: Largest size of the cache directory.
    type: str
    default: 256m
  inactive:
    description: Entries not requested for this long are removed.
    type: str
    default: 1h
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
'''

EXAMPLES = r'''
- name: Enable the page cache of shop/production
  pressluft.wordpress.page_cache:
    site: shop
    env: production
    state: enabled
    fencing_token: "{{ pressluft_fencing_token | default(omit) }}"

- name: Create the switch of a new environment, disabled, leaving an existing one alone
  pressluft.wordpress.page_cache:
    site: shop
    env: staging
    state: disabled
    force: false
'''

RETURN = r'''
enabled:
  description: Whether the cache is on after the run (V(false) also for O(state=absent)).
  returned: always
  type: bool
  sample: true
paths:
  description: The zone file and the switch.
  returned: always
  type: list
  elements: str
  sample:
    - /etc/nginx/conf.d/pressluft-cache-shop_production.conf
    - /etc/nginx/pressluft-cache/shop_production.conf
'''

import os
import shutil

from ansible_collections.pressluft.wordpress.plugins.module_utils import _page_cache as pc
from ansible_collections.pressluft.wordpress.plugins.module_utils._atomic import file_differs, write_file
from ansible_collections.pressluft.wordpress.plugins.module_utils._env import env_module
from ansible_collections.pressluft.wordpress.plugins.module_utils._names import (
    NGINX_CACHE_DIR,
    PAGE_CACHE_ROOT,
)


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except (OSError, IOError):
        return ''


def _check(p, names):
    pc.check_time('valid', p['valid'])
    pc.check_time('inactive', p['inactive'])
    pc.check_size('keys_zone_size', p['keys_zone_size'])
    pc.check_size('max_size', p['max_size'])


def _mkdir(path):
    if not os.path.isdir(path):
        os.makedirs(path, 0o755)
    os.chown(path, 0, 0)
    os.chmod(path, 0o755)


def main():
    argument_spec = dict(
        state=dict(type='str', choices=['enabled', 'disabled', 'absent'], default='enabled'),
        force=dict(type='bool', default=True),
        valid=dict(type='str', default='10m'),
        keys_zone_size=dict(type='str', default='4m', no_log=False),  # a size (validate-modules asks)
        max_size=dict(type='str', default='256m'),
        inactive=dict(type='str', default='1h'),
    )
    module, names = env_module(argument_spec, check=_check)
    p = module.params
    zone, switch = names['cache_zone_conf'], names['cache_conf']
    before = {path: _read(path) for path in (zone, switch)}

    if p['state'] == 'absent':
        changed = any(os.path.lexists(x) for x in (zone, switch, names['cache_dir']))
        if changed and not module.check_mode:
            for path in (switch, zone):
                if os.path.lexists(path):
                    os.unlink(path)
            shutil.rmtree(names['cache_dir'], ignore_errors=True)
        after = {zone: '', switch: ''}
        enabled = False
    else:
        included = 'include %s;' % switch in _read(names['nginx_conf'])
        if p['state'] == 'enabled' and p['force'] and not included:
            module.fail_json(msg='the server block %s does not include the page cache switch %s: converge '
                             'the environment first (pressluft site create, playbook site_create.yml)'
                             % (names['nginx_conf'], switch))
        want = {zone: pc.render_zone(names, p['keys_zone_size'], p['max_size'], p['inactive'])}
        keep = not p['force'] and os.path.exists(switch)
        if not keep:
            want[switch] = pc.render_switch(names, p['state'] == 'enabled', p['valid'])
        changed = any(file_differs(path, text.encode('utf-8'), 0, 0, 0o644) for path, text in want.items())
        if not module.check_mode:
            for directory in (PAGE_CACHE_ROOT, NGINX_CACHE_DIR):
                _mkdir(directory)
            for path, text in want.items():
                if file_differs(path, text.encode('utf-8'), 0, 0, 0o644):
                    write_file(path, text.encode('utf-8'), 0, 0, 0o644)
        after = dict(before, **want)
        enabled = 'fastcgi_cache ' in after[switch]
    result = dict(changed=changed, enabled=enabled, paths=[zone, switch])
    if module._diff and changed:
        result['diff'] = [dict(before=before[x], after=after[x], before_header=x, after_header=x)
                          for x in (zone, switch) if before[x] != after[x]]
    module.exit_json(**result)


if __name__ == '__main__':
    main()

#!/usr/bin/python
# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: cache_purge
short_description: Purge the nginx page cache of a Pressluft environment, whole or by URL
description:
  - Checks the fencing token of the site first, so a stale job changes nothing.
  - Runs as root on the node; PHP never gets write access to nginx's cache (docs/cache.md).
  - Without O(urls), removes every entry of the environment's cache directory
    C(/var/cache/pressluft/page/<site>_<env>). With O(urls), removes each page's entries (http and
    https, GET and HEAD) found by nginx's cache key C($scheme$request_method$host$request_uri).
  - Each URL's host must be a name the environment's own server block lists in C(server_name);
    any other host fails the module before anything is removed.
  - Only this environment's directory is ever touched, so purging one environment leaves every other's
    entries in place. nginx answers a removed entry with a miss and stores the page again.
version_added: "1.0.0"
author:
  - Pressluft developers (@pressluft)
extends_documentation_fragment:
  - pressluft.wordpress.attributes
  - pressluft.wordpress.env
  - pressluft.wordpress.fencing
options:
  urls:
    description:
      - Pages to purge, C(http(s)://HOST/PATH) without query string. Empty purges the whole cache.
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
'''

EXAMPLES = r'''
- name: Purge the whole page cache of shop/production
  pressluft.wordpress.cache_purge:
    site: shop
    env: production
    fencing_token: "{{ pressluft_fencing_token | default(omit) }}"

- name: Purge two pages
  pressluft.wordpress.cache_purge:
    site: shop
    env: production
    urls:
      - https://shop.example.com/
      - https://shop.example.com/about/
'''

RETURN = r'''
purged:
  description: Number of cache entries removed (would be removed, in check mode).
  returned: always
  type: int
  sample: 2
'''

import os

from ansible_collections.pressluft.wordpress.plugins.module_utils import _page_cache as pc
from ansible_collections.pressluft.wordpress.plugins.module_utils._env import env_module


def _owned(names):
    try:
        with open(names['nginx_conf']) as f:
            return pc.server_names(f.read())
    except (OSError, IOError):
        return set()


def main():
    pages = []

    def check(p, names):  # before the fencing check: a refused purge records nothing
        owned = _owned(names) if p['urls'] else set()
        pages.extend(pc.check_url(url, owned) for url in p['urls'])

    module, names = env_module(dict(urls=dict(type='list', elements='str', default=[])), check=check)
    if pages:
        paths = [x for _scheme, host, path in pages for x in pc.url_entries(names['cache_dir'], host, path)]
    else:
        paths = pc.all_entries(names['cache_dir'])
    if module.check_mode:
        purged = len([x for x in paths if os.path.exists(x)])
    else:
        purged = len(pc.remove(paths))
    module.exit_json(changed=purged > 0, purged=purged)


if __name__ == '__main__':
    main()

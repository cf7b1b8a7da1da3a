#!/usr/bin/python
# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: reload_marker
short_description: Tell which services must reload because their configuration is newer than their last reload
description:
  - Keeps one marker file per service in O(marker_dir), touched after each successful reload (O(mark)).
  - Without O(mark), reports in RV(pending) every service whose watched files or directories (and the
    files directly inside those directories) were modified after its marker, or which has no marker.
    Directories count because adding, replacing or removing a file changes their modification time.
  - This makes reloads survive interrupted runs, which handlers do not. A configuration written by a run
    that stopped before its reload is still reloaded by the next run.
version_added: "1.0.0"
author:
  - Pressluft developers (@pressluft)
options:
  watch:
    description:
      - Service name to a list of files or directories whose changes need a reload of that service.
      - Missing paths are ignored.
    type: dict
    default: {}
  mark:
    description: Services that were just reloaded; their markers are touched. Nothing is checked then.
    type: list
    elements: str
    default: []
  marker_dir:
    description: Directory of the marker files, created C(0755) root when missing.
    type: path
    default: /var/lib/pressluft/reload
attributes:
  check_mode:
    description: Can run in check mode and predict changes without modifying the target.
    support: full
  diff_mode:
    description: Returns details on what has changed in diff mode.
    support: none
'''

EXAMPLES = r'''
- name: Find services whose configuration changed since their last reload
  pressluft.wordpress.reload_marker:
    watch:
      nginx: [/etc/nginx/pressluft-sites]
      php8.2-fpm: [/etc/php/8.2/fpm/pool.d]
  register: reload

- name: Reload nginx
  ansible.builtin.service:
    name: nginx
    state: reloaded
  when: "'nginx' in reload.pending"

- name: Record the reload
  pressluft.wordpress.reload_marker:
    mark: [nginx]
  when: "'nginx' in reload.pending"
'''

RETURN = r'''
pending:
  description: Services that need a reload (only when O(mark) is empty).
  returned: always
  type: list
  elements: str
  sample: [nginx]
'''

import os
import re

from ansible.module_utils.basic import AnsibleModule

SERVICE_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$')


def newest_mtime(paths):
    newest = None
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            continue
        times = [st.st_mtime]
        if os.path.isdir(path):
            for entry in os.listdir(path):
                try:
                    times.append(os.lstat(os.path.join(path, entry)).st_mtime)
                except OSError:
                    pass
        top = max(times)
        newest = top if newest is None else max(newest, top)
    return newest


def main():
    module = AnsibleModule(argument_spec=dict(
        watch=dict(type='dict', default={}),
        mark=dict(type='list', elements='str', default=[]),
        marker_dir=dict(type='path', default='/var/lib/pressluft/reload'),
    ), supports_check_mode=True)
    p = module.params
    for service in list(p['watch']) + p['mark']:
        if not SERVICE_RE.match(service):
            module.fail_json(msg='invalid service name %r' % service)

    if p['mark']:
        if not module.check_mode:
            if not os.path.isdir(p['marker_dir']):
                os.makedirs(p['marker_dir'], 0o755)
            for service in p['mark']:
                with open(os.path.join(p['marker_dir'], service + '.reloaded'), 'a'):
                    pass
                os.utime(os.path.join(p['marker_dir'], service + '.reloaded'), None)
        module.exit_json(changed=True, pending=[])

    pending = []
    for service, paths in sorted(p['watch'].items()):
        if isinstance(paths, str):
            paths = [paths]
        newest = newest_mtime(paths)
        try:
            reloaded = os.stat(os.path.join(p['marker_dir'], service + '.reloaded')).st_mtime
        except OSError:
            reloaded = None
        if reloaded is None or (newest is not None and newest > reloaded):
            pending.append(service)
    module.exit_json(changed=False, pending=pending)


if __name__ == '__main__':
    main()

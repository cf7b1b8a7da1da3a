#!/usr/bin/python
# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: stale_pidfile
short_description: Remove a daemon's pidfile when its process is not that daemon
description:
  - On a host whose PID 1 is not systemd (single-server mode), an init script's C(status) trusts the
    pidfile. A daemon that died without removing it (a crash, a host restored from a snapshot) leaves a
    process ID that another process may hold later; C(status) then reports the daemon running, and
    M(ansible.builtin.service) never starts it.
  - This module removes the pidfile when the process it names does not exist or does not run
    O(executable), so the next C(service ... start) starts the daemon. A live daemon's pidfile stays.
  - Under systemd the unit tracks its process itself; there is no need to run this module.
version_added: "1.0.0"
author:
  - Pressluft developers (@pressluft)
options:
  path:
    description: The daemon's pidfile.
    type: path
    required: true
  executable:
    description: The daemon's program, as C(/proc/PID/exe) names it (for example C(/usr/bin/redis-server)).
    type: path
    required: true
attributes:
  check_mode:
    description: Can run in check mode and predict changes without modifying the target.
    support: full
  diff_mode:
    description: Returns details on what has changed in diff mode.
    support: full
'''

EXAMPLES = r'''
- name: Forget a pidfile Redis left behind
  pressluft.wordpress.stale_pidfile:
    path: /run/redis/redis-server.pid
    executable: /usr/bin/redis-server
  when: ansible_facts['service_mgr'] != 'systemd'
'''

RETURN = r'''
pid:
  description: The process ID the pidfile held; null when there was no pidfile or it held no number.
  returned: always
  type: int
  sample: 27295
running:
  description: Whether that process runs O(executable).
  returned: always
  type: bool
  sample: false
'''

import os

from ansible.module_utils.basic import AnsibleModule


def running_program(pid):
    """The program process `pid` runs, or None when there is no such process."""
    try:
        target = os.readlink('/proc/%d/exe' % pid)
    except FileNotFoundError:
        return None
    # A daemon whose package was upgraded while it ran shows its old file as deleted.
    return target[:-len(' (deleted)')] if target.endswith(' (deleted)') else target


def main():
    module = AnsibleModule(
        argument_spec=dict(path=dict(type='path', required=True),
                           executable=dict(type='path', required=True)),
        supports_check_mode=True,
    )
    path, executable = module.params['path'], module.params['executable']
    try:
        with open(path) as f:
            text = f.read().strip()
    except FileNotFoundError:
        module.exit_json(changed=False, pid=None, running=False)
    pid = int(text) if text.isdigit() and int(text) > 0 else None
    try:
        program = running_program(pid) if pid else None
    except PermissionError:
        module.fail_json(msg='cannot read /proc/%d/exe: run this module as root (become)' % pid, pid=pid)
    running = program is not None and os.path.realpath(program) == os.path.realpath(executable)
    if running:
        module.exit_json(changed=False, pid=pid, running=True)
    if not module.check_mode:
        os.unlink(path)
    diff = dict(before=dict(path=path, state='file'), after=dict(path=path, state='absent'))
    module.exit_json(changed=True, pid=pid, running=False, diff=diff)


if __name__ == '__main__':
    main()

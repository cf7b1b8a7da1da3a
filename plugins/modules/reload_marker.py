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
  - With O(reload), also does the reloads in one step (one module run instead of a test, a reload, a wait
    and a mark task per service). It runs the O(validate) commands of the pending services first
    (nothing is reloaded when one fails), then reloads each pending service in the order of O(reload),
    waiting after each for its O(wait_for) path, then touches the markers of the reloaded services with
    the time the check started, so a change written meanwhile still counts as pending.
  - Reloads use the host's service manager - C(systemctl reload) when systemd is PID 1, otherwise
    C(service <name> reload) (the init scripts Debian ships), as M(ansible.builtin.service) does - so
    single-server mode works in containers, WSL and CI sandboxes whose PID 1 is not systemd.
version_added: "1.0.0"
author:
  - Pressluft developers (@pressluft)
extends_documentation_fragment:
  - pressluft.wordpress.attributes
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
  reload:
    description:
      - Reload the pending services of O(watch) in this order; services not listed are only reported.
    type: list
    elements: str
    default: []
  validate:
    description:
      - Service name to a command (argument list) that must succeed before any reload.
      - Run only when that service is pending, with the open-files soft limit raised to the hard limit
        (C(nginx -t) opens two log files per environment, which a login session's 1,024 does not hold).
    type: dict
    default: {}
  wait_for:
    description:
      - Service name to a path that must exist after its reload (for example a new PHP-FPM pool's socket).
    type: dict
    default: {}
  fpm:
    description:
      - Service name to the PHP version of a PHP-FPM service, for example C(php8.2-fpm) to C(8.2).
      - FPM reloads by re-executing its master; a reload that fails leaves no master and every pool of that
        version down. So before any reload, a pending FPM service's whole configuration is tested
        (C(php-fpm<version> -t)) and its pools are counted against the master's open-files limit
        (C(php-fpm -t) passes a configuration past it); nothing is reloaded when either fails.
      - After its reload the task waits until the master's log says it is ready again, and fails with the
        log's error when it says the new master did not start.
    type: dict
    default: {}
  timeout:
    description: Seconds to wait for each O(wait_for) path (and for a reloaded FPM master).
    type: int
    default: 30
attributes:
  check_mode:
    support: full
  diff_mode:
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

- name: The same in one task - test nginx, reload PHP-FPM, wait for the new pool, reload nginx
  pressluft.wordpress.reload_marker:
    watch:
      nginx: [/etc/nginx/pressluft-sites]
      php8.2-fpm: [/etc/php/8.2/fpm/pool.d]
    reload: [php8.2-fpm, nginx]
    validate:
      nginx: [nginx, -t, -q]
    fpm:
      php8.2-fpm: "8.2"
    wait_for:
      php8.2-fpm: /run/php/pressluft-shop_production.sock
'''

RETURN = r'''
pending:
  description: Services that need a reload (only when O(mark) is empty), before any reload of O(reload).
  returned: always
  type: list
  elements: str
  sample: [nginx]
reloaded:
  description: Services this task reloaded (with O(reload); in check mode, would reload).
  returned: always
  type: list
  elements: str
  sample: [php8.2-fpm, nginx]
service_manager:
  description: How the services were (or would be) reloaded, C(systemd) or C(service); only with O(reload).
  returned: when O(reload) lists a pending service
  type: str
  sample: systemd
'''

import os
import re
import resource
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.service import is_systemd_managed
from ansible_collections.pressluft.wordpress.plugins.module_utils import _fpm

SERVICE_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$')
PHP_VERSION_RE = re.compile(r'^[5-9]\.[0-9]{1,2}$')


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
        reload=dict(type='list', elements='str', default=[]),
        validate=dict(type='dict', default={}),
        wait_for=dict(type='dict', default={}),
        fpm=dict(type='dict', default={}),
        timeout=dict(type='int', default=30),
    ), supports_check_mode=True, mutually_exclusive=[('mark', 'reload')])
    p = module.params
    started = time.time()
    for service in (list(p['watch']) + p['mark'] + p['reload'] + list(p['validate']) + list(p['wait_for'])
                    + list(p['fpm'])):
        if not SERVICE_RE.match(service):
            module.fail_json(msg='invalid service name %r' % service)
    for service, version in p['fpm'].items():
        if not isinstance(version, str) or not PHP_VERSION_RE.match(version):
            module.fail_json(msg='fpm: %s needs a PHP version like "8.2", not %r' % (service, version))

    if p['mark']:
        if not module.check_mode:
            _mark(p['marker_dir'], p['mark'])
        module.exit_json(changed=True, pending=[], reloaded=[])

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
    todo = [s for s in p['reload'] if s in pending]
    if not todo:
        module.exit_json(changed=False, pending=pending, reloaded=[])
    manager = reload_command(module)
    if not module.check_mode:
        _reload(module, p, todo, started, manager)
    module.exit_json(changed=True, pending=pending, reloaded=todo, service_manager=manager[0])


def reload_command(module):
    """(name, argv prefix) of the reload: systemctl when systemd is PID 1, else service(8)."""
    if is_systemd_managed(module):
        return 'systemd', [module.get_bin_path('systemctl', required=True), 'reload']
    service = module.get_bin_path('service', opt_dirs=['/usr/sbin', '/sbin'])
    if not service:
        module.fail_json(msg='cannot reload services: systemd is not PID 1 and service(8) is not installed')
    return 'service', [service]


def _checks(module, p, service):
    """The argument lists that must pass before any reload, and FPM's descriptor budget."""
    argv = p['validate'].get(service)
    if argv is not None and (isinstance(argv, str) or not isinstance(argv, list)):
        module.fail_json(msg='validate of %s must be an argument list' % service)
    commands = [[str(a) for a in argv]] if argv else []
    version = p['fpm'].get(service)
    if version:
        binary = module.get_bin_path('php-fpm%s' % version, opt_dirs=['/usr/sbin'], required=True)
        commands.append([binary, '-t', '-y', _fpm.CONF.format(version=version)])
    return commands, version


def _raise_nofile():
    """The validate commands test configurations whose services run with their units' limits."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass


def _reload(module, p, todo, started, manager):
    _raise_nofile()
    for service in todo:
        commands, version = _checks(module, p, service)
        for argv in commands:
            rc, out, err = module.run_command(argv)
            if rc != 0:
                what = ' '.join(argv)
                module.fail_json(msg='%s failed, nothing reloaded: %s' % (what, (err or out).strip()),
                                 pending=todo, reloaded=[])
        problem = version and _fpm.budget_problem(version)
        if problem:
            module.fail_json(msg='nothing reloaded: %s' % problem, pending=todo, reloaded=[])
    kind, prefix = manager
    done = []
    for service in todo:
        argv = [*prefix, service] if kind == 'systemd' else [*prefix, service, 'reload']
        version = p['fpm'].get(service)
        log = version and _fpm.error_log(version)
        offset = _size(log)
        rc, out, err = module.run_command(argv)
        if rc != 0:
            module.fail_json(msg='%s failed: %s' % (' '.join(argv), (err or out).strip()),
                             pending=todo, reloaded=done, service_manager=kind)
        if log:
            _wait_fpm_ready(module, p, service, log, offset, todo, done)
        done.append(service)
        path = p['wait_for'].get(service)
        deadline = time.time() + p['timeout']
        while path and not os.path.exists(path):
            if time.time() > deadline:
                module.fail_json(msg='%s did not appear within %ds after reloading %s'
                                 % (path, p['timeout'], service),
                                 pending=todo, reloaded=done)
            time.sleep(0.02)
        _mark(p['marker_dir'], [service], started)


def _size(path):
    try:
        return os.path.getsize(path) if path else 0
    except OSError:
        return 0


def _wait_fpm_ready(module, p, service, log, offset, todo, done):
    """The reload signal returns at once; the re-executed master logs whether it started."""
    deadline = time.time() + p['timeout']
    while True:
        try:
            with open(log, 'rb') as f:
                if _size(log) < offset:  # rotated meanwhile
                    offset = 0
                f.seek(offset)
                lines = f.read().decode('utf-8', 'replace').splitlines()
        except (IOError, OSError):
            lines = []
        if any('ready to handle connections' in line for line in lines):
            return
        if any('FPM initialization failed' in line for line in lines):
            errors = [line.strip() for line in lines if 'ERROR' in line][-3:]
            module.fail_json(msg='%s did not come back after its reload, its pools are down: %s'
                             % (service, ' | '.join(errors) or 'FPM initialization failed'),
                             pending=todo, reloaded=done)
        if time.time() > deadline:
            module.fail_json(msg='%s logged no "ready to handle connections" in %s within %ds of its reload'
                             % (service, log, p['timeout']), pending=todo, reloaded=done)
        time.sleep(0.02)


def _mark(marker_dir, services, when=None):
    if not os.path.isdir(marker_dir):
        os.makedirs(marker_dir, 0o755)
    for service in services:
        path = os.path.join(marker_dir, service + '.reloaded')
        with open(path, 'a'):
            pass
        os.utime(path, None if when is None else (when, when))


if __name__ == '__main__':
    main()

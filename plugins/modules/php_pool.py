#!/usr/bin/python
# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: php_pool
short_description: Manage the PHP-FPM pool of a Pressluft site environment
version_added: "1.0.0"
description:
  - Writes the pool file C(/etc/php/<php_version>/fpm/pool.d/pressluft-<site>_<env>.conf) of one
    environment, running as the environment's own user with its own socket and C(open_basedir).
  - The new file is rendered next to the old one, checked with C(php-fpm<php_version> -t) against a
    configuration that includes only that pool, and only then renamed over the old file.
    An invalid pool fails the task and leaves the old file in place.
  - A new pool is refused, the same way, when the master of its PHP version would hold more pools than its
    open-files limit allows (C(rlimit_files) of C(php-fpm.conf), else the running master's limit, minus a
    reserve). C(php-fpm -t) passes such a configuration, but the reload after it fails with
    C(Too many open files) and stops every pool of that version.
  - All pools of a PHP version share one PHP-FPM master and its opcache; every pool gets
    C(opcache.restrict_api=/dev/null/), which no script path can start with, so no site can list
    (C(opcache_get_status)) or reset (C(opcache_reset)) the opcache that holds the other sites' scripts, and
    C(opcache.validate_permission=on), so a pool never runs a cached script its user cannot read.
  - Never reloads PHP-FPM, so many pools can change with one reload; reload when RV(reload_needed) is true.
  - The environment user and group must exist, and the environment's C(tmp) and C(logs)
    directories (C(/var/www/sites/<site>/<env>/tmp) and C(.../logs), writable by that user) should
    exist before PHP serves requests; this module does not create them.
author:
  - Pressluft developers (@pressluft)
extends_documentation_fragment:
  - pressluft.wordpress.env
  - pressluft.wordpress.fencing
attributes:
  check_mode:
    description:
      - Reports what would change without writing.
      - Runs C(php-fpm -t) on the new pool when PHP-FPM is installed.
    support: full
  diff_mode:
    description: Returns the old and new pool file.
    support: full
  platform:
    description: Debian nodes with Debian's C(php<version>-fpm) packages.
    support: full
    platforms: debian
options:
  php_version:
    description: PHP version whose PHP-FPM gets the pool, such as C(8.2).
    type: str
    required: true
  state:
    description: Whether the pool file exists.
    type: str
    choices: [present, absent]
    default: present
  pm:
    description: Process manager of the pool.
    type: str
    choices: [ondemand, dynamic, static]
    default: ondemand
  max_children:
    description: C(pm.max_children), the most workers the pool runs at once.
    type: int
    default: 5
  min_spare_servers:
    description: C(pm.min_spare_servers) (and the number started) when O(pm=dynamic).
    type: int
    default: 1
  max_spare_servers:
    description: C(pm.max_spare_servers) when O(pm=dynamic).
    type: int
    default: 3
  process_idle_timeout:
    description:
      - C(pm.process_idle_timeout) when O(pm=ondemand).
      - A number with an optional unit C(s), C(m), C(h) or C(d).
    type: str
    default: 10s
  max_requests:
    description: C(pm.max_requests), requests a worker serves before it is replaced; C(0) never replaces it.
    type: int
    default: 500
  memory_limit:
    description: PHP C(memory_limit) of the pool, such as C(256M), or C(-1) for no limit.
    type: str
    default: 256M
  user:
    description: User the workers run as. Defaults to the environment user C(<site>_<env>).
    type: str
  group:
    description: Group the workers run as. Defaults to the environment group C(<site>_<env>).
    type: str
  listen_owner:
    description: Owner of the pool socket C(/run/php/pressluft-<site>_<env>.sock).
    type: str
    default: www-data
  listen_group:
    description: Group of the pool socket.
    type: str
    default: www-data
  listen_mode:
    description: Mode of the pool socket, in octal.
    type: str
    default: '0660'
  open_basedir:
    description:
      - Directories PHP may open files in. Defaults to the environment root
        C(/var/www/sites/<site>/<env>), which holds the releases, shared files, C(tmp) and C(logs).
    type: list
    elements: path
  upload_tmp_dir:
    description: Directory for uploads in progress. Defaults to C(/var/www/sites/<site>/<env>/tmp).
    type: path
  session_save_path:
    description: Directory of PHP session files. Defaults to C(/var/www/sites/<site>/<env>/tmp).
    type: path
  error_log:
    description: PHP error log of the pool. Defaults to C(/var/www/sites/<site>/<env>/logs/php-error.log).
    type: path
  php_admin_values:
    description:
      - "Further C(php_admin_value) settings, ini name to value, such as C({upload_max_filesize: 64M})."
      - Boolean values are written as C(on) and C(off).
      - Names are ini directive names; values must not contain line breaks. Settings that have their own
        option here (C(open_basedir), C(memory_limit), C(upload_tmp_dir), C(session.save_path),
        C(error_log), C(sys_temp_dir)) are refused, and so are C(opcache.restrict_api) and
        C(opcache.validate_permission), which every pool gets (see the description).
    type: dict
    default: {}
notes:
  - Run C(systemctl reload php<php_version>-fpm) (a handler) when RV(reload_needed) is true.
seealso:
  - plugin: pressluft.wordpress.env_names
    plugin_type: filter
'''

EXAMPLES = r'''
- name: PHP-FPM pool of shop/production
  pressluft.wordpress.php_pool:
    site: shop
    env: production
    php_version: "8.2"
    max_children: 8
    php_admin_values:
      upload_max_filesize: 64M
      post_max_size: 64M
    fencing_token: "{{ pressluft_fencing_token | default(omit) }}"
  register: pool
  notify: Reload php-fpm

- name: Remove the pool of shop/staging
  pressluft.wordpress.php_pool:
    site: shop
    env: staging
    php_version: "8.2"
    state: absent
'''

RETURN = r'''
pool_file:
  description: Path of the pool file.
  returned: always
  type: str
  sample: /etc/php/8.2/fpm/pool.d/pressluft-shop_production.conf
pool_name:
  description: Name of the pool.
  returned: always
  type: str
  sample: shop_production
socket:
  description: Path of the pool's socket (nginx passes requests to C(unix:<socket>)).
  returned: always
  type: str
  sample: /run/php/pressluft-shop_production.sock
user:
  description: User the workers run as.
  returned: always
  type: str
  sample: shop_production
reload_needed:
  description:
    - Whether PHP-FPM must be reloaded for the change to take effect (the pool file was written or removed).
  returned: always
  type: bool
  sample: true
'''

import os
import re
import shutil
import stat
import tempfile

from ansible_collections.pressluft.wordpress.plugins.module_utils._env import env_module
from ansible_collections.pressluft.wordpress.plugins.module_utils._fpm import budget_problem
from ansible_collections.pressluft.wordpress.plugins.module_utils._names import (
    env_names,
    pool_file,
    validate_php_version,
)

ACCOUNT_RE = re.compile(r'^[a-z_][a-z0-9_-]{0,31}$')
DURATION_RE = re.compile(r'^[0-9]+[smhd]?$')
SIZE_RE = re.compile(r'^(-1|[0-9]+[KMGkmg]?)$')
MODE_RE = re.compile(r'^0?[0-7]{3}$')
INI_NAME_RE = re.compile(r'^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$')
# Paths go into the ini file unquoted: keep to characters that need no quoting.
PATH_RE = re.compile(r'^/[A-Za-z0-9_./@+-]*$')
# All pools of a PHP version share one master and one opcache. Its API (opcache_get_status, opcache_reset,
# opcache_invalidate, ...) acts on every pool's scripts: restrict_api set to the pool's own root would still
# let a site list and reset the others'. A prefix no script path can have (/dev/null is no directory) turns
# the API off for every pool; validate_permission keeps a pool from running a script cached for another user
# that it cannot read. Both are per pool (php_admin_*), so no ini file elsewhere can loosen them.
OPCACHE_RESTRICT_API = '/dev/null/'
FIXED = ('opcache.restrict_api', 'opcache.validate_permission')
OWN_OPTIONS = {
    'open_basedir': 'open_basedir', 'memory_limit': 'memory_limit', 'upload_tmp_dir': 'upload_tmp_dir',
    'session.save_path': 'session_save_path', 'error_log': 'error_log', 'sys_temp_dir': 'upload_tmp_dir',
}


def check_params(p):
    """Fill the defaults derived from the names; return a list of problems with the parameters."""
    names = env_names(p['site'], p['env'])
    validate_php_version(p['php_version'])
    problems = []
    p['user'] = p['user'] or names['user']
    p['group'] = p['group'] or names['group']
    p['open_basedir'] = p['open_basedir'] or [names['root']]
    p['upload_tmp_dir'] = p['upload_tmp_dir'] or names['tmp']
    p['session_save_path'] = p['session_save_path'] or names['tmp']
    p['error_log'] = p['error_log'] or names['logs'] + '/php-error.log'
    for key in ('user', 'group', 'listen_owner', 'listen_group'):
        if not ACCOUNT_RE.fullmatch(p[key]):
            problems.append('%s %r is not a valid user or group name' % (key, p[key]))
    for path in p['open_basedir'] + [p['upload_tmp_dir'], p['session_save_path'], p['error_log']]:
        if not PATH_RE.fullmatch(path):
            problems.append('path %r must be absolute and use only letters, digits and _ . / @ + -'
                            % (path,))
    if not MODE_RE.fullmatch(p['listen_mode']):
        problems.append('listen_mode %r is not an octal mode such as 0660' % (p['listen_mode'],))
    if not DURATION_RE.fullmatch(p['process_idle_timeout']):
        problems.append('process_idle_timeout %r is not a duration such as 10s'
                        % (p['process_idle_timeout'],))
    if not SIZE_RE.fullmatch(p['memory_limit']):
        problems.append('memory_limit %r is not a size such as 256M or -1' % (p['memory_limit'],))
    if p['max_children'] < 1 or p['max_requests'] < 0:
        problems.append('max_children must be at least 1 and max_requests at least 0')
    spares = (p['min_spare_servers'], p['max_spare_servers'])
    if p['pm'] == 'dynamic' and not 1 <= spares[0] <= spares[1] <= p['max_children']:
        problems.append('pm=dynamic needs 1 <= min_spare_servers <= max_spare_servers <= max_children')
    for key, value in p['php_admin_values'].items():
        if not INI_NAME_RE.fullmatch(str(key)):
            problems.append('php_admin_values name %r is not an ini directive name' % (key,))
        elif key in OWN_OPTIONS:
            problems.append('php_admin_values must not set %s: use the option %s' % (key, OWN_OPTIONS[key]))
        elif key in FIXED:
            problems.append('php_admin_values must not set %s: it keeps pools from reading or resetting each '
                            'other\'s opcache' % key)
        if value is None or isinstance(value, (dict, list)) or any(c in str(value) for c in '\r\n\0'):
            problems.append('php_admin_values[%s] must be a single-line scalar' % (key,))
    return names, problems


def render(p, names):
    """The pool file's text."""
    lines = [
        '; Managed by pressluft.wordpress.php_pool: changes made here are overwritten.',
        '[%s]' % names['pool_name'],
        'user = %s' % p['user'],
        'group = %s' % p['group'],
        'listen = %s' % names['pool_socket'],
        'listen.owner = %s' % p['listen_owner'],
        'listen.group = %s' % p['listen_group'],
        'listen.mode = %s' % p['listen_mode'],
        'pm = %s' % p['pm'],
        'pm.max_children = %d' % p['max_children'],
    ]
    if p['pm'] == 'ondemand':
        lines.append('pm.process_idle_timeout = %s' % p['process_idle_timeout'])
    elif p['pm'] == 'dynamic':
        lines += ['pm.start_servers = %d' % p['min_spare_servers'],
                  'pm.min_spare_servers = %d' % p['min_spare_servers'],
                  'pm.max_spare_servers = %d' % p['max_spare_servers']]
    lines += [
        'pm.max_requests = %d' % p['max_requests'],
        'clear_env = yes',
        'security.limit_extensions = .php',
        'php_admin_value[open_basedir] = %s' % ':'.join(p['open_basedir']),
        'php_admin_value[upload_tmp_dir] = %s' % p['upload_tmp_dir'],
        'php_admin_value[sys_temp_dir] = %s' % p['upload_tmp_dir'],
        'php_admin_value[session.save_path] = %s' % p['session_save_path'],
        'php_admin_value[error_log] = %s' % p['error_log'],
        'php_admin_flag[log_errors] = on',
        'php_admin_value[memory_limit] = %s' % p['memory_limit'],
        'php_admin_value[opcache.restrict_api] = %s' % OPCACHE_RESTRICT_API,
        'php_admin_flag[opcache.validate_permission] = on',
    ]
    for key in sorted(p['php_admin_values']):
        value = p['php_admin_values'][key]
        if isinstance(value, bool):
            value = 'on' if value else 'off'
        lines.append('php_admin_value[%s] = %s' % (key, value))
    return '\n'.join(lines) + '\n'


def php_fpm_test(module, version, candidate):
    """Run php-fpm -t on a main configuration that includes only the candidate pool file."""
    binary = module.get_bin_path('php-fpm%s' % version, opt_dirs=['/usr/sbin'])
    if binary is None:
        if module.check_mode:
            return  # e.g. a check run before PHP is installed: nothing to test against yet
        module.fail_json(msg='php-fpm%s is not installed' % version)
    workdir = tempfile.mkdtemp(prefix='php_pool-', dir=module.tmpdir)
    main = os.path.join(workdir, 'php-fpm.conf')
    log = os.path.join(workdir, 'test.log')
    with open(main, 'w') as f:
        f.write('[global]\npid = %s\nerror_log = %s\ninclude = %s\n'
                % (os.path.join(workdir, 'fpm.pid'), log, candidate))
    rc, _out, err = module.run_command([binary, '-t', '-y', main])
    if rc != 0:
        detail = err.strip()
        if os.path.exists(log):
            with open(log) as f:
                detail = (detail + '\n' + f.read().strip()).strip()
        return detail or 'php-fpm -t failed with status %d' % rc
    shutil.rmtree(workdir, ignore_errors=True)
    return None


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except (IOError, OSError):
        return None


def _check(p, names):
    problems = check_params(p)[1]
    if problems:
        raise ValueError('; '.join(problems))


def main():
    argument_spec = dict(
        php_version=dict(type='str', required=True),
        state=dict(type='str', choices=['present', 'absent'], default='present'),
        pm=dict(type='str', choices=['ondemand', 'dynamic', 'static'], default='ondemand'),
        max_children=dict(type='int', default=5),
        min_spare_servers=dict(type='int', default=1),
        max_spare_servers=dict(type='int', default=3),
        process_idle_timeout=dict(type='str', default='10s'),
        max_requests=dict(type='int', default=500),
        memory_limit=dict(type='str', default='256M'),
        user=dict(type='str'),
        group=dict(type='str'),
        listen_owner=dict(type='str', default='www-data'),
        listen_group=dict(type='str', default='www-data'),
        listen_mode=dict(type='str', default='0660'),
        open_basedir=dict(type='list', elements='path'),
        upload_tmp_dir=dict(type='path'),
        session_save_path=dict(type='path'),
        error_log=dict(type='path'),
        php_admin_values=dict(type='dict', default={}),
    )
    module, names = env_module(argument_spec, check=_check)
    p = module.params
    path = pool_file(p['php_version'], p['site'], p['env'])

    result = dict(changed=False, reload_needed=False, pool_file=path, pool_name=names['pool_name'],
                  socket=names['pool_socket'], user=p['user'])
    if os.path.isdir(path):
        module.fail_json(msg='%s is a directory; remove it first' % path, **result)
    irregular = os.path.lexists(path) and (os.path.islink(path) or not os.path.isfile(path))
    if irregular and p['state'] == 'present':
        module.fail_json(msg='%s exists but is not a regular file; remove it first' % path, **result)
    before = read(path)
    after = render(p, names) if p['state'] == 'present' else None
    if module._diff:
        result['diff'] = dict(before=before or '', after=after or '', before_header=path, after_header=path)

    if after is None:
        if before is not None or os.path.lexists(path):
            result.update(changed=True, reload_needed=True)
            if not module.check_mode:
                os.unlink(path)
        module.exit_json(**result)

    pool_dir = os.path.dirname(path)
    if not os.path.isdir(pool_dir) and not module.check_mode:
        module.fail_json(msg='%s does not exist: is PHP-FPM %s installed?' % (pool_dir, p['php_version']),
                         **result)
    current = os.lstat(path) if before is not None else None
    wrong_mode = current is not None and (
        not stat.S_ISREG(current.st_mode) or stat.S_IMODE(current.st_mode) != 0o644
        or current.st_uid != 0 or current.st_gid != 0)
    if before == after and not wrong_mode:
        module.exit_json(**result)
    if before is None:
        problem = budget_problem(p['php_version'], adding=1)
        if problem:
            module.fail_json(msg='%s is not written: %s' % (path, problem), **result)

    # Write the candidate where it will live (same file system, so the rename is atomic), but under
    # a name that PHP-FPM's "include=pool.d/*.conf" never matches.
    candidate_dir = pool_dir if os.path.isdir(pool_dir) and not module.check_mode else module.tmpdir
    fd, candidate = tempfile.mkstemp(prefix='.pressluft-', suffix='.tmp', dir=candidate_dir)
    try:
        with os.fdopen(fd, 'w') as f:
            f.write(after)
            f.flush()
            os.fchmod(f.fileno(), 0o644)
            if os.geteuid() == 0:
                os.fchown(f.fileno(), 0, 0)
            os.fsync(f.fileno())
        failure = php_fpm_test(module, p['php_version'], candidate)
        if failure:
            module.fail_json(msg='php-fpm rejected the pool; %s is unchanged: %s' % (path, failure), **result)
        if not module.check_mode:
            os.rename(candidate, path)
            dir_fd = os.open(pool_dir, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    finally:
        if os.path.exists(candidate):
            os.unlink(candidate)
    result.update(changed=True, reload_needed=True)
    module.exit_json(**result)


if __name__ == '__main__':
    main()

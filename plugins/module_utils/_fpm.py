# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What `php-fpm -t` does not check before a reload: the master's open-files limit.

The FPM master holds one listening socket per pool. A reload (USR2) re-executes the master, which then
needs a descriptor for every pool; past its limit it logs "Too many open files", "FPM initialization
failed" and exits, and every site of that PHP version is down (issue 21). `php-fpm -t` passes such a
configuration, so php_pool and reload_marker count the pools against the limit first.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import re

# Descriptors of the master besides the pools' sockets (stdio, logs, epoll, signal pipes; measured ~10)
# and the transient ones of the reload (user lookups).
RESERVE = 32
CONF = '/etc/php/{version}/fpm/php-fpm.conf'
POOLS = '/etc/php/{version}/fpm/pool.d/*.conf'
PID_FILE = '/run/php/php{version}-fpm.pid'
_SECTION = re.compile(r'^\s*\[([^\]]+)\]\s*$', re.M)
_RLIMIT = re.compile(r'^\s*rlimit_files\s*=\s*(\d+)\s*$', re.M)
_ERROR_LOG = re.compile(r'^\s*error_log\s*=\s*(\S+)\s*$', re.M)
_LIMITS = re.compile(r'^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)', re.M)


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except (IOError, OSError, UnicodeDecodeError):
        return None


def pool_count(version, skip=()):
    """Pools of the version's configuration (sections of pool.d/*.conf), files in `skip` left out."""
    count = 0
    for path in glob.glob(POOLS.format(version=version)):
        if path in skip:
            continue
        count += sum(1 for name in _SECTION.findall(_read(path) or '') if name.strip() != 'global')
    return count


def nofile_limit(version):
    """The limit a (re)started master runs with: rlimit_files of php-fpm.conf, else the running
    master's soft limit (a re-executed master keeps it); None when neither is known."""
    found = _RLIMIT.search(_read(CONF.format(version=version)) or '')
    if found:
        return int(found.group(1))
    pid = (_read(PID_FILE.format(version=version)) or '').strip()
    if pid.isdigit():
        limits = _LIMITS.search(_read('/proc/%s/limits' % pid) or '')
        if limits and limits.group(1).isdigit():
            return int(limits.group(1))
    return None


def budget_problem(version, adding=0, skip=()):
    """None, or why a master of `version` with `adding` more pools would not start."""
    limit = nofile_limit(version)
    if limit is None:
        return None
    pools = pool_count(version, skip) + adding
    if pools + RESERVE <= limit:
        return None
    return ('PHP-FPM %s would hold %d pools, but its open-files limit is %d (%d kept for the master): '
            'a reload would fail with "Too many open files" and stop every pool of this version. Raise '
            'node_php_rlimit_files (node_provision) or place the environment on another node'
            % (version, pools, limit, RESERVE))


def error_log(version):
    """The master's log file (php-fpm.conf error_log), or None (syslog, unset)."""
    found = _ERROR_LOG.search(_read(CONF.format(version=version)) or '')
    if found and found.group(1).startswith('/'):
        return found.group(1)
    return None

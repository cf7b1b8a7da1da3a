# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fencing tokens (docs/contracts.md): refuse work from a job older than the last one applied to a site."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fcntl
import os
import time

from ansible_collections.pressluft.wordpress.plugins.module_utils._names import validate_site

DEFAULT_FENCING_DIR = '/var/lib/pressluft/fencing'
LOCK_TIMEOUT = 600

FENCING_ARGSPEC = dict(
    fencing_token=dict(type='int', no_log=False),  # a counter, not a secret (validate-modules asks)
    fencing_dir=dict(type='path', default=DEFAULT_FENCING_DIR),
)

# Locks are held by open file descriptions until the module process exits, so one job's
# mutations of a site never interleave with another's. Kept per path: a second flock on a new
# descriptor of the same file in this process would deadlock.
_HELD = {}


def _read_token(fd):
    os.lseek(fd, 0, os.SEEK_SET)
    raw = os.read(fd, 64).decode('ascii', 'replace').strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        return None


def _lock(module, fd, path, operation):
    deadline = time.time() + LOCK_TIMEOUT
    while True:
        try:
            fcntl.flock(fd, operation | fcntl.LOCK_NB)
            return
        except (IOError, OSError) as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
        if time.time() > deadline:
            module.fail_json(msg='timed out after %ds waiting for the fencing lock %s' % (LOCK_TIMEOUT, path))
        time.sleep(0.2)


def _stale(module, site, token, recorded):
    msg = 'stale fencing token %d for site %s: token %d was already applied' % (token, site, recorded)
    module.fail_json(msg=msg,
                     stale_fencing_token=True, fencing_token=token, recorded_fencing_token=recorded)


def fence(module, site):
    """Check and record module.params['fencing_token'] for site; fails the module when it is stale.

    Returns the token now in force (None when no token was given). Call it before any change.
    """
    token = module.params.get('fencing_token')
    if token is None:
        return None
    try:
        validate_site(site)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    if token < 0:
        module.fail_json(msg='fencing_token must not be negative, got %d' % token)
    directory = module.params.get('fencing_dir') or DEFAULT_FENCING_DIR
    path = os.path.join(directory, site)

    if module.check_mode:
        # Compare only: never create the directory or file, never record.
        if not os.path.exists(path):
            return token
        fd = os.open(path, os.O_RDONLY)
        try:
            _lock(module, fd, path, fcntl.LOCK_SH)
            recorded = _read_token(fd)
        finally:
            os.close(fd)
        if recorded is not None and token < recorded:
            _stale(module, site, token, recorded)
        return token

    if not os.path.isdir(directory):
        os.makedirs(directory, 0o700)
        os.chmod(directory, 0o700)
    fd = _HELD.get(path)
    if fd is None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        _lock(module, fd, path, fcntl.LOCK_EX)
        _HELD[path] = fd
    recorded = _read_token(fd)
    if recorded is not None and token < recorded:
        _stale(module, site, token, recorded)
    if recorded != token:
        # Tokens only grow, so the new text is never shorter; overwrite in place (a rename would
        # swap the inode under the lock) and cut off whatever follows.
        data = ('%d\n' % token).encode('ascii')
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, data)
        os.ftruncate(fd, len(data))
        os.fsync(fd)
    return token

# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fencing (docs/contracts.md): refuse work from a job older than the last one applied to a site.

A site's record on the node holds the last token applied, the site incarnation it belongs to, the
run that applied it and whether the incarnation was retired (the site deleted). Tokens are compared
only within one incarnation: a re-created site, or the same name under another control plane, is a
different incarnation, never "older" or "newer" than the one the node knows.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fcntl
import json
import os
import re
import time

from ansible_collections.pressluft.wordpress.plugins.module_utils._names import validate_site

DEFAULT_FENCING_DIR = '/var/lib/pressluft/fencing'
LOCK_TIMEOUT = 600
# Incarnations and runs are ids the control plane draws at random; nothing else is accepted.
_ID_RE = re.compile(r'^[A-Za-z0-9_-]{1,64}$')
# Records are rewritten in place under the lock (a rename would swap the inode under it): one fixed
# size, so a rewrite never leaves the tail of a longer record behind.
_RECORD_SIZE = 256

FENCING_ARGSPEC = dict(
    fencing_token=dict(type='int', no_log=False),  # a counter, not a secret (validate-modules asks)
    fencing_incarnation=dict(type='str'),
    fencing_run=dict(type='str'),
    fencing_dir=dict(type='path', default=DEFAULT_FENCING_DIR),
)

# Locks are held by open file descriptions until the module process exits, so one job's
# mutations of a site never interleave with another's. Kept per path: a second flock on a new
# descriptor of the same file in this process would deadlock.
_HELD = {}


class FencingError(Exception):
    """A refused token: message plus the fields the module returns with it."""

    def __init__(self, msg, **fields):
        super(FencingError, self).__init__(msg)
        self.msg = msg
        self.fields = fields


def parse_record(raw):
    """The record in a fencing file's text, or None when empty or unreadable.

    Older Pressluft versions wrote the bare token: that is a record without incarnation or run.
    """
    raw = raw.strip()
    if not raw:
        return None
    if re.match(r'^[0-9]+$', raw):
        return dict(token=int(raw), incarnation=None, run=None, retired=False)
    try:
        data = json.loads(raw)
        token = data['token']
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(token, int) or isinstance(token, bool):
        return None
    ids = [data.get(k) for k in ('incarnation', 'run')]
    if any(v is not None and not (isinstance(v, str) and _ID_RE.match(v)) for v in ids):
        return None
    return dict(token=token, incarnation=ids[0], run=ids[1], retired=data.get('retired') is True)


def format_record(record):
    text = json.dumps(dict((k, record[k]) for k in ('token', 'incarnation', 'run', 'retired')),
                      sort_keys=True)
    return (text.ljust(_RECORD_SIZE - 1) + '\n').encode('ascii')


def verdict(record, token, incarnation, run, site):
    """Raise FencingError when (token, incarnation, run) must not touch a site whose record is `record`."""
    if record is None:
        return
    fields = dict(stale_fencing_token=True, fencing_token=token, recorded_fencing_token=record['token'],
                  fencing_incarnation=incarnation, recorded_fencing_incarnation=record['incarnation'])
    adopt = ('if this control plane is the one that should manage the site (for example its database was '
             'restored from an older copy), run `pressluft site adopt %s`' % site)
    # A record without incarnation predates incarnations: the token alone decides, as it did then.
    if record['incarnation'] is None or record['incarnation'] == incarnation:
        replay = token == record['token'] and record['run'] is not None and run != record['run']
        if token < record['token'] or replay:
            raise FencingError(
                'stale fencing token %d for site %s: token %d was already applied%s. Nothing was changed. '
                'An older job of this site may still be running; %s.'
                % (token, site, record['token'], ' by another run' if replay else '', adopt), **fields)
        return
    if record['retired']:
        return  # the incarnation the node knows was deleted: a new one may take the name
    raise FencingError(
        'site %s on this node is incarnation %s (token %d), not incarnation %s: another control plane, '
        'or an older life of this site, manages it. Nothing was changed; %s.'
        % (site, record['incarnation'], record['token'], incarnation or '(none)', adopt), **fields)


def _read(fd):
    os.lseek(fd, 0, os.SEEK_SET)
    return parse_record(os.read(fd, 4096).decode('ascii', 'replace'))


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


def _path(module, site):
    try:
        validate_site(site)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    return os.path.join(module.params.get('fencing_dir') or DEFAULT_FENCING_DIR, site)


def read_record(module, site):
    """The node's record for site (None when it has none), read under a shared lock; changes nothing."""
    path = _path(module, site)
    if path in _HELD:  # this process holds it exclusively already
        return _read(_HELD[path])
    if not os.path.exists(path):
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        _lock(module, fd, path, fcntl.LOCK_SH)
        return _read(fd)
    finally:
        os.close(fd)


def fence(module, site, retire=False):
    """Check and record module.params' fencing token for site; fails the module when it is refused.

    Returns the token now in force (None when no token was given). Call it before any change.
    retire=True marks the incarnation retired (the site was deleted): a new incarnation may then
    take the name.
    """
    p = module.params
    token = p.get('fencing_token')
    if token is None:
        if retire:
            module.fail_json(msg='retiring a site incarnation needs fencing_token')
        return None
    path = _path(module, site)
    if token < 0:
        module.fail_json(msg='fencing_token must not be negative, got %d' % token)
    for key in ('fencing_incarnation', 'fencing_run'):
        if p.get(key) is not None and not _ID_RE.match(p[key]):
            module.fail_json(msg='%s must be 1-64 letters, digits, _ or -, got %r' % (key, p[key]))
    incarnation, run = p.get('fencing_incarnation'), p.get('fencing_run')

    if module.check_mode:  # compare only: never create the directory or file, never record
        try:
            verdict(read_record(module, site), token, incarnation, run, site)
        except FencingError as exc:
            module.fail_json(msg=exc.msg, **exc.fields)
        return token

    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o700)
        os.chmod(directory, 0o700)
    fd = _HELD.get(path)
    if fd is None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        _lock(module, fd, path, fcntl.LOCK_EX)
        _HELD[path] = fd
    recorded = _read(fd)
    try:
        verdict(recorded, token, incarnation, run, site)
    except FencingError as exc:
        module.fail_json(msg=exc.msg, **exc.fields)
    new = dict(token=token, incarnation=incarnation, run=run, retired=bool(retire))
    if recorded != new:
        data = format_record(new)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, data)
        os.ftruncate(fd, len(data))
        os.fsync(fd)
    return token

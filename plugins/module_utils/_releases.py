# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Release bookkeeping of an environment: the state file, the C(current) symlink, marks, pruning.

The symlink is the truth about what is live; the state file (outside releases/ and current/, so
nginx never serves it) remembers previous, last known good and each release's mark.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import datetime
import errno
import fcntl
import json
import os
import re
import stat
import tempfile
import time

STATE_FILE = '.pressluft-releases.json'
RELEASE_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$')
# The release states of pressluft_lib (states.py) that a node records; checking and live are not marks
# (checking is a build's run of the checks, live is what C(current) points at).
MARKS = ('building', 'healthy', 'failed', 'rolled_back')
FAILED_MARKS = ('building', 'failed', 'rolled_back')  # never switched to, never counted toward keep
# Spellings of state files written before the names were aligned with the library: read, never written.
OLD_MARKS = {'unfinished': 'building', 'unhealthy': 'failed'}
POINTERS = ('current', 'previous', 'last_known_good')
PRUNE_PREFIX = '.pruning-'
LOCK_TIMEOUT = 600

# Directory locks live until the module process exits (like the fencing lock).
_HELD = {}


class ReleaseError(Exception):
    """A refusal or an inconsistency; nothing was changed by the step that raised it."""


def valid_release(name):
    return isinstance(name, str) and bool(RELEASE_RE.fullmatch(name)) and '..' not in name


def validate_release(name):
    """Return the release name, or raise ValueError saying what is wrong with it."""
    if not valid_release(name):
        raise ValueError('invalid release name %r: use 1-64 letters, digits, dots, dashes and underscores, '
                         'starting with a letter or digit, without ".."' % (name,))
    return name


def timestamp(seconds=None):
    """ISO 8601 UTC with microseconds: sorts as text in creation order."""
    if seconds is None:
        seconds = time.time()
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).isoformat(timespec='microseconds')


def empty_state():
    return {'current': None, 'previous': None, 'last_known_good': None, 'releases': {}}


def _mark(info):
    mark = info.get('mark')
    return OLD_MARKS.get(mark, mark)


def _check_shape(data, path):
    """Raise ReleaseError unless data looks like a state file this module wrote."""
    def bad(what):
        raise ReleaseError('%s is not a release state file (%s): fix or remove it' % (path, what))
    if not isinstance(data, dict) or not isinstance(data.get('releases', {}), dict):
        bad('expected an object with "releases"')
    for key in POINTERS:
        value = data.get(key)
        if value is not None and not valid_release(value):
            bad('%s is %r' % (key, value))
    for name, info in data.get('releases', {}).items():
        if not valid_release(name) or not isinstance(info, dict) or _mark(info) not in MARKS:
            bad('release %r: %r' % (name, info))
        if not isinstance(info.get('created'), str):
            bad('release %r has no created time' % name)


class Releases(object):
    """The releases of one environment tree C(<root>/{releases/,current,.pressluft-releases.json})."""

    def __init__(self, root):
        self.root = os.path.normpath(os.path.abspath(root))
        self.releases_dir = os.path.join(self.root, 'releases')
        self.current_link = os.path.join(self.root, 'current')
        self.path = os.path.join(self.root, STATE_FILE)
        self.saved = None  # the file's content as loaded (None: no file yet)
        self.state = empty_state()

    def release_dir(self, name):
        return os.path.join(self.releases_dir, name)

    def exists(self, name):
        path = self.release_dir(name)
        return os.path.isdir(path) and not os.path.islink(path)

    def on_disk(self):
        """Release directories (hidden build and prune leftovers are not releases)."""
        if not os.path.isdir(self.releases_dir):
            return []
        return sorted(n for n in os.listdir(self.releases_dir) if valid_release(n) and self.exists(n))

    def mark(self, name):
        info = self.state['releases'].get(name)
        return info['mark'] if info else None

    def lock(self, check_mode):
        """flock the environment root: two runs never interleave their read-modify-write."""
        if self.root in _HELD:
            return
        fd = os.open(self.root, os.O_RDONLY)
        deadline = time.time() + LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(fd, (fcntl.LOCK_SH if check_mode else fcntl.LOCK_EX) | fcntl.LOCK_NB)
                break
            except (IOError, OSError) as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
            if time.time() > deadline:
                os.close(fd)
                raise ReleaseError('timed out after %ds waiting for the lock on %s'
                                   % (LOCK_TIMEOUT, self.root))
            time.sleep(0.2)
        _HELD[self.root] = fd

    def linked(self):
        """Name of the release C(current) points at, None when there is no C(current)."""
        link = self.current_link
        if not os.path.lexists(link):
            return None
        if not os.path.islink(link):
            raise ReleaseError('%s exists and is not a symlink: move it away first' % link)
        target = os.path.normpath(os.path.join(self.root, os.readlink(link)))
        parent, name = os.path.split(target)
        if parent != self.releases_dir or not valid_release(name):
            raise ReleaseError('%s points at %s, which is not a release directory in %s'
                               % (link, target, self.releases_dir))
        return name

    def _check_owner(self):
        """The file decides what may go live: only root may have written it (the env user owns the root)."""
        try:
            st = os.lstat(self.path)
        except OSError:
            return
        if stat.S_ISLNK(st.st_mode) or not stat.S_ISREG(st.st_mode):
            raise ReleaseError('%s is not a regular file: move it away' % self.path)
        if os.geteuid() == 0 and (st.st_uid != 0 or st.st_mode & 0o022):
            raise ReleaseError('%s is not owned and writable by root only (uid %d, mode %o): someone else '
                               'wrote it; check it, then remove it or chown root and chmod 0640'
                               % (self.path, st.st_uid, stat.S_IMODE(st.st_mode)))

    def load(self):
        self._check_owner()
        try:
            with open(self.path) as f:
                raw = f.read()
        except (IOError, OSError) as exc:
            if exc.errno != errno.ENOENT:
                raise ReleaseError('cannot read %s: %s' % (self.path, exc)) from None
            raw = None
        if raw is not None:
            try:
                data = json.loads(raw)
            except ValueError as exc:
                raise ReleaseError('%s is not valid JSON (%s): fix or remove it' % (self.path, exc)) from None
            _check_shape(data, self.path)
            # Only the keys this module writes: anything else would make every run "changed".
            self.saved = empty_state()
            for key in POINTERS:
                self.saved[key] = data.get(key)
            for name, info in data.get('releases', {}).items():
                self.saved['releases'][name] = {'mark': _mark(info), 'created': info['created'],
                                                'reason': info.get('reason')}
        state = copy.deepcopy(self.saved) if self.saved else empty_state()
        # Directories the file does not know were made (and served) before bookkeeping began.
        unknown = [n for n in self.on_disk() if n not in state['releases']]
        for name in sorted(unknown, key=lambda n: (os.stat(self.release_dir(n)).st_mtime, n)):
            created = timestamp(os.stat(self.release_dir(name)).st_mtime)
            state['releases'][name] = {'mark': 'healthy', 'created': created, 'reason': None}
        linked = self.linked()
        if linked != state['current']:
            # current moved without this file: wp_site's first install, or a run that stopped
            # between the switch and the write. The link is the truth; what it replaced was previous.
            if state['current'] is not None and linked is not None:
                state['previous'] = state['current']
            state['current'] = linked
        if self.saved is None and linked is not None and self.exists(linked):
            state['last_known_good'] = linked  # it was serving when bookkeeping began
        self.state = state

    def record(self, name, mark, reason=None):
        """Set a release's mark (a new release is created now); without a reason an unchanged mark
        keeps its reason and a changed one drops it. Returns True when something changed."""
        info = self.state['releases'].get(name)
        if info is None:
            self.state['releases'][name] = {'mark': mark, 'created': timestamp(), 'reason': reason}
            return True
        if reason is None and info['mark'] == mark:
            reason = info.get('reason')
        changed = info['mark'] != mark or info.get('reason') != reason
        info['mark'], info['reason'] = mark, reason
        return changed

    def prune_plan(self, keep):
        """Releases to remove: failed ones (they never count toward keep), then good ones beyond keep."""
        protected = set(self.state[p] for p in POINTERS if self.state[p])
        order = sorted(self.on_disk(), key=lambda n: (self.state['releases'][n]['created'], n))
        failed = [n for n in order if self.mark(n) in FAILED_MARKS and n not in protected]
        good = [n for n in order if self.mark(n) not in FAILED_MARKS]
        kept = set(n for n in good if n in protected)
        for name in reversed(good):
            if len(kept) >= keep:
                break
            kept.add(name)
        return failed + [n for n in good if n not in kept]

    def forget_missing(self):
        """Drop entries whose directory is gone, unless a pointer names them."""
        protected = set(self.state[p] for p in POINTERS if self.state[p])
        for name in list(self.state['releases']):
            if name not in protected and not self.exists(name):
                del self.state['releases'][name]

    # Changes on disk.

    def point_current(self, name):
        """Atomically replace C(current) by a link to the release (absolute, as wp_site makes it)."""
        self._clean('.current.tmp-')
        tmp = os.path.join(self.root, '.current.tmp-%d' % os.getpid())
        os.symlink(self.release_dir(name), tmp)
        try:
            os.rename(tmp, self.current_link)
        except OSError:
            os.unlink(tmp)
            raise
        _fsync_dir(self.root)

    def remove(self, name, run_command):
        """Rename the release out of sight first, so no half-removed release keeps its name."""
        hidden = os.path.join(self.releases_dir, PRUNE_PREFIX + name)
        os.rename(self.release_dir(name), hidden)
        run_command(['rm', '-rf', '--one-file-system', '--', hidden], check_rc=True)

    def leftovers(self):
        """Hidden directories of prunes that stopped half-way."""
        if not os.path.isdir(self.releases_dir):
            return []
        return sorted(n for n in os.listdir(self.releases_dir) if n.startswith(PRUNE_PREFIX))

    def dirty(self):
        return self.saved != self.state

    def _clean(self, prefix):
        """Remove temporary files of runs that died (under the lock, no other run is writing)."""
        for name in os.listdir(self.root):
            path = os.path.join(self.root, name)
            if name.startswith(prefix) and (os.path.islink(path) or os.path.isfile(path)):
                os.unlink(path)

    def save(self):
        """Write the state file atomically: 0640, root-owned when run as root."""
        self._clean(STATE_FILE + '.tmp-')
        fd, tmp = tempfile.mkstemp(prefix=STATE_FILE + '.tmp-', dir=self.root)
        try:
            with os.fdopen(fd, 'w') as f:
                os.fchmod(f.fileno(), 0o640)
                if os.geteuid() == 0:
                    os.fchown(f.fileno(), 0, 0)
                json.dump(self.state, f, indent=2, sort_keys=True)
                f.write('\n')
                f.flush()
                os.fsync(f.fileno())
            os.rename(tmp, self.path)
        except BaseException:
            if os.path.lexists(tmp):
                os.unlink(tmp)
            raise
        _fsync_dir(self.root)
        self.saved = copy.deepcopy(self.state)


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""WordPress core release directories: unpack atomically, link shared files, read the version."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import re
import shutil
import tempfile

from ansible.module_utils.urls import fetch_url

VERSION_RE = re.compile(r"\$wp_version\s*=\s*'([^']+)'")


class ReleaseError(Exception):
    """The release could not be created; nothing was left behind."""


def release_version(path):
    """WordPress version of a core tree (from wp-includes/version.php), or None."""
    try:
        with open(os.path.join(path, 'wp-includes', 'version.php')) as f:
            match = VERSION_RE.search(f.read())
    except (IOError, OSError):
        return None
    return match.group(1) if match else None


def download(module, url, algorithm, expected):
    """Download url into the module's temp dir and verify its digest (sha256 or sha1); return the path."""
    response, info = fetch_url(module, url, timeout=120)
    if info.get('status') != 200 or response is None:
        raise ReleaseError('downloading %s failed: HTTP %s %s' % (url, info.get('status'), info.get('msg')))
    digest = hashlib.new(algorithm)
    fd, path = tempfile.mkstemp(dir=module.tmpdir, suffix='.tar.gz')
    with os.fdopen(fd, 'wb') as f:
        while True:
            chunk = response.read(1 << 20)
            if not chunk:
                break
            digest.update(chunk)
            f.write(chunk)
    if digest.hexdigest() != expected:
        raise ReleaseError('checksum mismatch for %s: got %s %s, expected %s'
                           % (url, algorithm, digest.hexdigest(), expected))
    return path


def _find_core(path):
    """The directory holding wp-load.php: path itself or its single subdirectory (wordpress/)."""
    if os.path.isfile(os.path.join(path, 'wp-load.php')):
        return path
    entries = [e for e in os.listdir(path) if os.path.isdir(os.path.join(path, e))]
    if len(entries) == 1 and os.path.isfile(os.path.join(path, entries[0], 'wp-load.php')):
        return os.path.join(path, entries[0])
    raise ReleaseError('no WordPress core (wp-load.php) at the top of the source '
                       'or in its single subdirectory')


def _link(path, target):
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        if os.listdir(path):
            raise ReleaseError('%s is not empty; it must become a link to %s' % (path, target))
        os.rmdir(path)
    os.symlink(target, path)


def _normalise(core):
    """Root-owned, world-readable, read-only for everyone else: PHP cannot change core."""
    as_root = os.geteuid() == 0
    for top, dirs, files in os.walk(core):
        for name in dirs + files:
            path = os.path.join(top, name)
            if os.path.islink(path):
                if as_root:
                    os.lchown(path, 0, 0)
                continue
            if as_root:
                os.chown(path, 0, 0)
            os.chmod(path, 0o755 if os.path.isdir(path) else 0o644)
    if as_root:
        os.chown(core, 0, 0)
    os.chmod(core, 0o755)


def ensure_release(module, src, release_dir, version, names):
    """Unpack src (archive or directory) into release_dir, atomically: temp dir, then rename."""
    parent = os.path.dirname(release_dir)
    work = tempfile.mkdtemp(prefix='.tmp-%s-' % os.path.basename(release_dir), dir=parent)
    try:
        unpacked = os.path.join(work, 'src')
        if os.path.isdir(src):
            module.run_command(['cp', '-a', '--', src, unpacked], check_rc=True)
        elif os.path.isfile(src):
            os.mkdir(unpacked)
            rc, _out, err = module.run_command(['tar', '-xf', src, '-C', unpacked, '--no-same-owner'])
            if rc != 0:
                raise ReleaseError('unpacking %s failed: %s' % (src, err.strip()))
        else:
            raise ReleaseError('src %s does not exist on the node' % src)
        core = _find_core(unpacked)
        found = release_version(core)
        if found != version:
            raise ReleaseError('%s holds WordPress %s, not %s' % (src, found, version))
        _link(os.path.join(core, 'wp-config.php'), names['wp_config'])
        _link(os.path.join(core, 'wp-content', 'uploads'), names['uploads'])
        _normalise(core)
        os.rename(core, release_dir)
    except (IOError, OSError) as exc:
        raise ReleaseError('creating %s failed: %s' % (release_dir, exc)) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)

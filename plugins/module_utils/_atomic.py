# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write a small file atomically with its owner and mode, only when something differs."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import tempfile


def file_differs(path, data, uid, gid, mode):
    """True when path is missing or differs from data, uid, gid or mode (uid/gid None: not compared)."""
    try:
        st = os.lstat(path)
        with open(path, 'rb') as f:
            same = f.read() == data
    except (OSError, IOError):
        return True
    if not same or (st.st_mode & 0o7777) != mode:
        return True
    return uid is not None and (st.st_uid, st.st_gid) != (uid, gid)


def write_file(path, data, uid, gid, mode):
    """Replace path by data in one rename, so a reader never sees a half-written file."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix='.' + os.path.basename(path) + '.')
    try:
        os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
    except Exception:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise

# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Artifacts of a Pressluft backup: dump row counts, deterministic tars, checksums (docs/backups.md)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import re
import stat

ID_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$')
MANIFEST = 'manifest.json'
RESTIC_STATE = 'restic.json'
# Format 2 names the files 'artifacts'; format 1 (written before) called them 'artefacts'.
FORMAT = 2

# GNU tar options that make the archive a pure function of the tree (names, contents, modes,
# numeric owners, nanosecond mtimes): an unchanged tree gives the same bytes, which restic
# deduplicates. pax headers keep full mtimes; their default names hold the PID and atime/ctime
# change on every read, hence exthdr.name and delete=. Part of the fingerprint, so a change here
# never reuses an archive made with other options.
TAR_CREATE = ['--create', '--format=posix',
              '--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime',
              '--sort=name', '--numeric-owner', '--no-acls', '--no-xattrs']

_INSERT_RE = re.compile(r'^INSERT INTO `((?:[^`]|``)+)` VALUES\s?')
_CREATE_RE = re.compile(r'^CREATE TABLE `((?:[^`]|``)+)` \(')
# A quoted SQL string as mysqldump writes it (backslash escapes); removed before counting tuples.
_STRING_RE = re.compile(r"'(?:[^'\\]|\\.)*'", re.S)


def valid_id(backup_id):
    return isinstance(backup_id, str) and ID_RE.fullmatch(backup_id) is not None


def table_rows(lines):
    """Rows per table of a mysqldump: one INSERT per line (MySQL) or one tuple per line (MariaDB 10.11).

    mysqldump escapes newlines inside strings and writes only literals, so once the quoted strings
    are removed, every remaining '(' of an INSERT opens one row.
    """
    rows = {}
    table = None
    for line in lines:
        if table is None:
            if line.startswith('CREATE TABLE'):
                match = _CREATE_RE.match(line)
                if match:
                    rows.setdefault(match.group(1).replace('``', '`'), 0)
                continue
            match = _INSERT_RE.match(line) if line.startswith('INSERT INTO') else None
            if not match:
                continue
            table = match.group(1).replace('``', '`')
            line = line[match.end():]
        values = _STRING_RE.sub("''", line)
        rows[table] = rows.get(table, 0) + values.count('(')
        if values.rstrip().endswith(';'):
            table = None
    return rows


def sha256_file(path, bufsize=1 << 20):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        while True:
            chunk = f.read(bufsize)
            if not chunk:
                break
            digest.update(chunk)
    return digest.hexdigest()


def tree_fingerprint(parent, member):
    """SHA-256 over the metadata tar records for parent/member (names, types, modes, owners, sizes, mtimes).

    An equal fingerprint means tar would write the same archive (the same heuristic rsync and restic
    use: a content change that keeps size and mtime goes unnoticed).
    """
    digest = hashlib.sha256(json.dumps(TAR_CREATE).encode())
    top = os.path.join(parent, member)
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        for name in [None, *sorted(filenames + links)]:
            path = dirpath if name is None else os.path.join(dirpath, name)
            st = os.lstat(path)
            link = os.readlink(path) if stat.S_ISLNK(st.st_mode) else ''
            fields = (os.path.relpath(path, parent), st.st_mode, st.st_uid, st.st_gid, st.st_size,
                      st.st_mtime_ns, link)
            record = '%s\0%o\0%d\0%d\0%d\0%d\0%s\n' % fields
            digest.update(record.encode('utf-8', 'surrogateescape'))
    return digest.hexdigest()


def read_manifest(directory):
    """The manifest of a complete backup directory, or None."""
    try:
        with open(os.path.join(directory, MANIFEST)) as f:
            data = json.load(f)
    except (IOError, OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get('format') not in (1, FORMAT):
        return None
    if data['format'] == 1:  # an older backup: read it as format 2, the file stays as it was
        data['artifacts'] = data.pop('artefacts', None) or []
        data['format'] = FORMAT
    return data


def write_json(path, data):
    tmp = path + '.tmp'
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write('\n')
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


def verify(directory, manifest):
    """Problems found comparing the artifacts in directory with the manifest (empty when intact)."""
    problems = []
    for artifact in manifest.get('artifacts') or []:
        name = artifact.get('name', '')
        path = os.path.join(directory, name)
        if not ID_RE.fullmatch(name) or not os.path.isfile(path) or os.path.islink(path):
            problems.append('%s: missing' % name)
            continue
        size = os.path.getsize(path)
        if size != artifact.get('size'):
            problems.append('%s: size %d, manifest says %s' % (name, size, artifact.get('size')))
        elif sha256_file(path) != artifact.get('sha256'):
            problems.append('%s: sha256 does not match the manifest' % name)
    if not manifest.get('artifacts'):
        problems.append('the manifest lists no artifacts')
    return problems


def previous_artifact(backup_dir, skip, name, fingerprint):
    """(path, manifest entry) of an earlier backup's artifact with this fingerprint, or (None, None)."""
    try:
        entries = os.listdir(backup_dir)
    except OSError:
        return None, None
    for entry in sorted(entries, reverse=True):
        if entry == skip or not ID_RE.fullmatch(entry):
            continue
        manifest = read_manifest(os.path.join(backup_dir, entry))
        for artifact in (manifest or {}).get('artifacts') or []:
            if artifact.get('name') == name and artifact.get('fingerprint') == fingerprint:
                path = os.path.join(backup_dir, entry, name)
                if os.path.isfile(path) and os.path.getsize(path) == artifact.get('size'):
                    return path, artifact
    return None, None

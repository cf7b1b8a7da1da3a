# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure helpers of the wp_update module: WP-CLI's JSON, versions, the headers inside plugin/theme/core
zips, and the tree comparison that proves a build changed only what it updated."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import zipfile

# WordPress.org slugs: lowercase letters, digits, dashes, underscores, dots (never a path).
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
VERSION_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$")
KINDS = ("core", "plugin", "theme")
_HEADER_BYTES = 8192  # WordPress reads the first 8 KiB of a file for its headers (get_file_data)
_MAX_ENTRIES = 100000


class UpdateError(Exception):
    pass


def wp_json(out, what):
    """The JSON array WP-CLI printed (the last line that parses), or [] when it printed a Success line.

    Any row whose status is Error is a failure whatever WP-CLI's exit code was: `wp plugin update`
    exits 0 for some failed items (e.g. a download error) and says so only in the row.
    """
    rows = None
    for line in reversed((out or "").splitlines()):
        line = line.strip()
        if line.startswith("["):
            try:
                rows = json.loads(line)
                break
            except ValueError:
                continue
    if rows is None:
        return []
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise UpdateError("%s: WP-CLI printed no list of rows: %s" % (what, out.strip()[:300]))
    errors = [r for r in rows if str(r.get("status", "")).lower() == "error"]
    if errors:
        raise UpdateError(
            "%s: WP-CLI reported errors for %s"
            % (
                what,
                ", ".join(
                    "%s (%s)" % (r.get("name", "?"), r.get("message") or r.get("status")) for r in errors
                ),
            )
        )
    return rows


def major(version):
    return str(version).split(".", 1)[0]


def minor_key(version):
    """What --minor-only keeps equal: the first two components (WP-CLI's --minor: 1.3 -> 1.4, not 2.0)."""
    return tuple(str(version).split(".")[:2])


def _header(text, field):
    m = re.search(r"^[ \t/*#@]*" + re.escape(field) + r":(.*)$", text, re.MULTILINE | re.IGNORECASE)
    return m.group(1).strip() if m else None


def _read_head(zf, info):
    with zf.open(info) as f:
        return f.read(_HEADER_BYTES).decode("utf-8", "replace")


def zip_package(path, kind):
    """(slug, version) of a plugin, theme or core zip, read from its headers; UpdateError when it is none.

    A plugin or theme zip holds one top directory (the slug); a core zip holds wordpress/.
    Members with absolute paths or '..' are refused (WP-CLI would unpack them)."""
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise UpdateError("%s is not a zip archive: %s" % (path, exc)) from None
    with zf:
        infos = zf.infolist()
        if not infos or len(infos) > _MAX_ENTRIES:
            raise UpdateError("%s holds no files or too many" % path)
        tops = set()
        for info in infos:
            name = info.filename
            if name.startswith("/") or "\\" in name or ".." in name.split("/"):
                raise UpdateError("%s holds an unsafe member %r" % (path, name[:200]))
            tops.add(name.split("/", 1)[0])
        if len(tops) != 1:
            raise UpdateError(
                "%s must hold one top directory, not %s" % (path, ", ".join(sorted(tops))[:200])
            )
        slug = tops.pop()
        by_name = dict((i.filename, i) for i in infos)
        version = None
        if kind == "core":
            info = by_name.get("%s/wp-includes/version.php" % slug)
            m = re.search(r"\$wp_version\s*=\s*'([^']+)'", _read_head(zf, info)) if info else None
            version = m.group(1) if m else None
            slug = "wordpress"
        elif kind == "theme":
            info = by_name.get("%s/style.css" % slug)
            version = _header(_read_head(zf, info), "Version") if info else None
        else:
            for info in infos:
                parts = info.filename.split("/")
                if len(parts) == 2 and parts[1].endswith(".php"):
                    head = _read_head(zf, info)
                    if _header(head, "Plugin Name"):
                        version = _header(head, "Version")
                        break
    if not SLUG_RE.match(slug):
        raise UpdateError("%s: %r is no %s slug" % (path, slug[:100], kind))
    if not version or not VERSION_RE.match(version):
        raise UpdateError("%s holds no %s with a Version header" % (path, kind))
    return slug, version


def tree_index(root, skip=()):
    """relative path -> (kind, size, mtime_ns, mode, link target) of everything under root but `skip`
    (relative paths whose subtrees are left out); symlinks are not followed."""
    out = {}
    skip = set(skip)
    for top, dirs, files in os.walk(root):
        rel_top = os.path.relpath(top, root)
        rel_top = "" if rel_top == "." else rel_top
        keep = []
        for d in dirs:
            rel = os.path.join(rel_top, d)
            if rel in skip:
                continue
            full = os.path.join(top, d)
            if os.path.islink(full):
                out[rel] = ("link", 0, 0, 0, os.readlink(full))
            else:
                st = os.lstat(full)
                out[rel] = ("dir", 0, 0, st.st_mode & 0o7777, None)
                keep.append(d)
        dirs[:] = keep
        for f in files:
            rel = os.path.join(rel_top, f)
            if rel in skip:
                continue
            full = os.path.join(top, f)
            st = os.lstat(full)
            if os.path.islink(full):
                out[rel] = ("link", 0, 0, 0, os.readlink(full))
            else:
                out[rel] = ("file", st.st_size, st.st_mtime_ns, st.st_mode & 0o7777, None)
    return out


def tree_changes(before, after):
    """Paths added, removed or changed between two tree_index() results, sorted."""
    return sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))

# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Site import, the analysis before anything changes (docs/import.md): unpack an archive safely, find the
WordPress tree or wp-content and the SQL dump, read the table prefix and multisite flags without running
the imported wp-config.php, count what MariaDB would refuse, and rewrite the dump so it would not.

Nothing here touches a live environment: it reads an archive and writes into a work directory.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import gzip
import os
import re
import shutil
import stat
import tarfile
import zipfile
import zlib

from ansible_collections.pressluft.wordpress.plugins.module_utils._wp_release import release_version

DUMP_SUFFIXES = ('.sql', '.sql.gz')
PREFIX_RE = re.compile(r"^\s*\$table_prefix\s*=\s*['\"]([A-Za-z0-9_]{1,32})['\"]\s*;", re.M)
MULTISITE_RE = re.compile(r"define\(\s*['\"](MULTISITE|WP_ALLOW_MULTISITE)['\"]\s*,\s*(true|1)\s*\)", re.I)
CREATE_RE = re.compile(r"^CREATE TABLE (?:IF NOT EXISTS )?`([A-Za-z0-9_$]+)`")
# MySQL 8's collations MariaDB lacks (utf8mb4_0900_ai_ci and its siblings) and the one that replaces them.
COLLATION_RE = re.compile(r"\b(utf8mb4|utf8mb3|utf8)_0900_[a-z_]+\b")
COLLATION_TARGET = 'utf8mb4_unicode_520_ci'
# DEFINER=`user`@`host` (views, triggers, routines): the source's accounts do not exist here.
DEFINER_RE = re.compile(r"(/\*!\d+\s+)?DEFINER\s*=\s*(`[^`]*`|'[^']*'|\w+)@(`[^`]*`|'[^']*'|[\w.%-]+)"
                        r"(\s+SQL SECURITY DEFINER)?(\s*\*/)?")
PHP_RE = re.compile(r"\.(php\d?|phtml|phar)$", re.I)
MAX_LISTED = 50


class ImportRefused(Exception):
    """The archive cannot be imported; the message says why. Nothing was changed."""


def _safe_name(name):
    parts = name.replace('\\', '/').split('/')
    if name.startswith('/') or '..' in parts or '\x00' in name:
        raise ImportRefused('the archive holds an unsafe path: %r' % name[:200])
    return name


def unpack(archive, dest):
    """Unpack a .tar, .tar.gz/.tgz or .zip into dest: regular files and directories only, no path outside
    dest; a corrupt archive is refused."""
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                bad = zf.testzip()
                if bad is not None:
                    raise ImportRefused('the archive is corrupt (CRC error in %s)' % bad)
                for info in zf.infolist():
                    _safe_name(info.filename)
                    mode = info.external_attr >> 16
                    if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                        raise ImportRefused('the archive holds a link or special file: %s' % info.filename)
                zf.extractall(dest)
            return
        with tarfile.open(archive) as tf:
            members = tf.getmembers()
            for m in members:
                _safe_name(m.name)
                if not (m.isreg() or m.isdir()):
                    raise ImportRefused('the archive holds a link or special file: %s' % m.name)
            for m in members:
                m.mode = (m.mode & 0o755) | (0o700 if m.isdir() else 0o600)
                m.uid = m.gid = 0
                m.uname = m.gname = ''
                tf.extract(m, dest, set_attrs=False)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise ImportRefused('the archive is corrupt or not a tar/zip archive: %s' % exc) from None


def _top(root):
    """root, or its single subdirectory when that is all it holds (wordpress/, a site's name)."""
    entries = [e for e in os.listdir(root) if not e.startswith('.')]
    if len(entries) == 1 and os.path.isdir(os.path.join(root, entries[0])):
        return os.path.join(root, entries[0])
    return root


def _dumps(*dirs):
    found = []
    for d in dirs:
        if d and os.path.isdir(d):
            found += [os.path.join(d, e) for e in sorted(os.listdir(d))
                      if e.endswith(DUMP_SUFFIXES) and os.path.isfile(os.path.join(d, e))]
    return sorted(set(found))


def find_payload(root):
    """{core, wp_content, dump, wp_config}: core is a WordPress tree (wp-load.php) or None when the
    archive holds wp-content only; the dump is the one .sql/.sql.gz at the top or beside the tree."""
    top = _top(root)
    core = wp_content = None
    if os.path.isfile(os.path.join(top, 'wp-load.php')):
        core = top
        wp_content = os.path.join(top, 'wp-content')
    elif os.path.isdir(os.path.join(top, 'wp-content')):
        wp_content = os.path.join(top, 'wp-content')
    elif os.path.basename(top) == 'wp-content' or any(
            os.path.isdir(os.path.join(top, d)) for d in ('plugins', 'themes', 'uploads')):
        wp_content = top
    if wp_content is None or not os.path.isdir(wp_content):
        raise ImportRefused('the archive holds neither a WordPress tree (wp-load.php) nor a wp-content '
                            'directory')
    dumps = _dumps(root, top, os.path.dirname(wp_content))
    if not dumps:
        raise ImportRefused('the archive holds no database dump (.sql or .sql.gz at its top)')
    if len(dumps) > 1:
        names = ', '.join(os.path.basename(d) for d in dumps)
        raise ImportRefused('the archive holds several dumps: %s' % names)
    wp_config = None
    for d in (core, os.path.dirname(core) if core else None):
        if d and os.path.isfile(os.path.join(d, 'wp-config.php')):
            wp_config = os.path.join(d, 'wp-config.php')
            break
    return {'core': core, 'wp_content': wp_content, 'dump': dumps[0], 'wp_config': wp_config}


def read_wp_config(path):
    """Table prefix and multisite flag from the imported wp-config.php, read as text (never run)."""
    if not path:
        return {'table_prefix': None, 'multisite': False}
    with open(path, errors='replace') as f:
        text = f.read(1024 * 1024)
    m = PREFIX_RE.search(text)
    return {'table_prefix': m.group(1) if m else None, 'multisite': bool(MULTISITE_RE.search(text))}


def _open_dump(path):
    if path.endswith('.gz'):
        return gzip.open(path, 'rt', encoding='utf-8', errors='surrogateescape', newline='')
    return open(path, 'rt', encoding='utf-8', errors='surrogateescape', newline='')


def _is_data(line):
    return line.startswith(('INSERT ', 'REPLACE ', '('))


def rewrite_dump(src, dst):
    """Copy the dump to dst (plain SQL) with MySQL 8 collations replaced and DEFINER clauses removed,
    in statements only (row data is never changed); return what scan_dump returns."""
    tables, collations, definers, size = [], 0, 0, 0
    try:
        with contextlib.ExitStack() as stack:
            fin = stack.enter_context(_open_dump(src))
            fout = stack.enter_context(open(dst, 'w', encoding='utf-8', errors='surrogateescape', newline=''))
            for line in fin:
                if not _is_data(line):
                    m = CREATE_RE.match(line)
                    if m:
                        tables.append(m.group(1))
                    line, n = COLLATION_RE.subn(COLLATION_TARGET, line)
                    collations += n
                    line, n = DEFINER_RE.subn('', line)
                    definers += n
                size += len(line)
                fout.write(line)
    except (OSError, EOFError, UnicodeError, zlib.error) as exc:
        raise ImportRefused('the dump cannot be read (corrupt or truncated): %s' % exc) from None
    if not tables:
        raise ImportRefused('the dump creates no tables: not a database dump')
    return {'tables': tables, 'collations_rewritten': collations, 'definers_stripped': definers,
            'bytes': size}


def table_prefix(tables, config_prefix):
    """The prefix of the WordPress tables: the wp-config's when its <prefix>options table is in the
    dump, else the one prefix in front of `options` and `users`."""
    if config_prefix and config_prefix + 'options' in tables:
        return config_prefix
    found = sorted(t[:-7] for t in tables if t.endswith('options') and t[:-7] + 'users' in tables)
    if len(found) != 1:
        what = ('several WordPress table sets (%s)' % ', '.join(found)) if found else \
            'no <prefix>options and <prefix>users tables'
        raise ImportRefused('cannot tell the table prefix: the dump has %s' % what)
    return found[0]


def php_in_uploads(wp_content):
    uploads = os.path.join(wp_content, 'uploads')
    found = []
    for top, _dirs, files in os.walk(uploads):
        for name in files:
            if PHP_RE.search(name):
                found.append(os.path.relpath(os.path.join(top, name), uploads))
    return sorted(found)


def tree_bytes(path):
    total = 0
    for top, _dirs, files in os.walk(path):
        for name in files:
            total += os.lstat(os.path.join(top, name)).st_size
    return total


def analyze(work, archive, rewritten_dump, free_bytes):
    """Unpack archive into work and analyse it; refuse (ImportRefused) what cannot be imported. Returns
    the analysis with the payload's paths; the rewritten dump is at rewritten_dump. An archive that is a
    directory (a tree pulled over SSH, links and special files left behind) is analysed where it is."""
    if os.path.isdir(archive):
        work = archive
    else:
        unpack(archive, work)
    payload = find_payload(work)
    config = read_wp_config(payload['wp_config'])
    dump = rewrite_dump(payload['dump'], rewritten_dump)
    prefix = table_prefix(dump['tables'], config['table_prefix'])
    multisite = config['multisite'] or prefix + 'blogs' in dump['tables'] or prefix + 'site' in dump['tables']
    if multisite:
        raise ImportRefused('the site is a multisite network (MULTISITE in wp-config.php or %sblogs/%ssite '
                            'tables): Pressluft imports single sites only' % (prefix, prefix))
    files = tree_bytes(payload['core'] or payload['wp_content'])
    # The unpacked tree and the dump are here already; the release copy, uploads and the database need
    # about as much again.
    needed = files + dump['bytes'] * 2
    if free_bytes is not None and needed > free_bytes:
        raise ImportRefused('not enough free disk: the import needs about %d MB, %d MB are free'
                            % (needed // 1048576, free_bytes // 1048576))
    php = php_in_uploads(payload['wp_content'])
    return {
        'wordpress_version': release_version(payload['core']) if payload['core'] else None,
        'wp_content_only': payload['core'] is None,
        'table_prefix': prefix,
        'multisite': False,
        'tables': len(dump['tables']),
        'files_bytes': files,
        'dump_bytes': dump['bytes'],
        'needed_bytes': needed,
        'free_bytes': free_bytes,
        'collations_rewritten': dump['collations_rewritten'],
        'definers_stripped': dump['definers_stripped'],
        'php_in_uploads': php[:MAX_LISTED],
        'php_in_uploads_count': len(php),
        'wp_config_found': payload['wp_config'] is not None,
        'paths': {'core': payload['core'], 'wp_content': payload['wp_content'], 'dump': rewritten_dump,
                  'source_dump': payload['dump'], 'wp_config': payload['wp_config']},
    }


def remove(path):
    shutil.rmtree(path, ignore_errors=True)

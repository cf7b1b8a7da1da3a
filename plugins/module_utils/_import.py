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
import subprocess
import tarfile
import time
import zipfile
import zlib

from ansible_collections.pressluft.wordpress.plugins.module_utils._php_constants import owned, read_constants
from ansible_collections.pressluft.wordpress.plugins.module_utils._wp_release import release_version

DUMP_SUFFIXES = ('.sql', '.sql.gz')
PREFIX_RE = re.compile(r"^\s*\$table_prefix\s*=\s*['\"]([A-Za-z0-9_]{1,32})['\"]\s*;", re.M)
MULTISITE_RE = re.compile(r"define\(\s*['\"](MULTISITE|WP_ALLOW_MULTISITE)['\"]\s*,\s*(true|1)\s*\)", re.I)
CREATE_RE = re.compile(br"^CREATE TABLE (?:IF NOT EXISTS )?`([A-Za-z0-9_$]+)`")
# MySQL 8's collations MariaDB lacks (utf8mb4_0900_ai_ci and its siblings) and the one that replaces them.
COLLATION_RE = re.compile(br"\b(utf8mb4|utf8mb3|utf8)_0900_[a-z_]+\b")
COLLATION_TARGET = b'utf8mb4_unicode_520_ci'
# DEFINER=`user`@`host` (views, triggers, routines): the source's accounts do not exist here.
DEFINER_RE = re.compile(br"(/\*!\d+\s+)?DEFINER\s*=\s*(`[^`]*`|'[^']*'|\w+)@(`[^`]*`|'[^']*'|[\w.%-]+)"
                        br"(\s+SQL SECURITY (?:DEFINER|INVOKER))?(\s*\*/)?")


def definer_clause(m):
    """A DEFINER clause goes; a view's (followed by SQL SECURITY) becomes SQL SECURITY INVOKER, so the view
    runs with the rights of whoever reads it, never a definer's."""
    if m.group(4):
        return (m.group(1) or b'') + b'SQL SECURITY INVOKER' + (m.group(5) or b'')
    return b''


PHP_RE = re.compile(r"\.(php\d?|phtml|phar)$", re.I)
MAX_LISTED = 50


class ImportRefused(Exception):
    """The archive cannot be imported; the message says why. Nothing was changed."""


def _safe_name(name):
    parts = name.replace('\\', '/').split('/')
    if name.startswith('/') or '..' in parts or '\x00' in name:
        raise ImportRefused('the archive holds an unsafe path: %r' % name[:200])
    return name


def _extract_tar(tf, dest):
    """One pass over the stream: each member is checked, then written; a refused one stops the unpack
    (the work directory is removed by the caller)."""
    for m in tf:
        _safe_name(m.name)
        if not (m.isreg() or m.isdir()):
            raise ImportRefused('the archive holds a link or special file: %s' % m.name)
        m.mode = (m.mode & 0o755) | (0o700 if m.isdir() else 0o600)
        m.uid = m.gid = 0
        m.uname = m.gname = ''
        tf.extract(m, dest, set_attrs=False)


def _is_gzip(archive):
    with open(archive, 'rb') as f:
        return f.read(2) == b'\x1f\x8b'


def unpack(archive, dest):
    """Unpack a .tar, .tar.gz/.tgz or .zip into dest: regular files and directories only, no path outside
    dest; a corrupt archive is refused. A tar is read once, as a stream (listing it first would decompress
    it twice); gzip runs in its own process beside the extraction."""
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
        if not _is_gzip(archive):
            with tarfile.open(archive, 'r|*') as tf:
                _extract_tar(tf, dest)
            return
        with subprocess.Popen(['gzip', '-dc', '--', archive], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) as gz:
            try:
                with tarfile.open(fileobj=gz.stdout, mode='r|') as tf:
                    _extract_tar(tf, dest)
                    gz.stdout.read()  # the rest after tar's end blocks, so gzip checks the whole stream
            finally:
                gz.stdout.close()
                err = gz.stderr.read().decode('utf-8', 'replace').strip()
                rc = gz.wait()
            if rc != 0:
                raise ImportRefused('the archive is corrupt (gzip: %s)' % err[-300:])
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
    """Table prefix, multisite flag and constants ({name: (value, literal)}) from the imported
    wp-config.php, read as text (never run)."""
    if not path:
        return {'table_prefix': None, 'multisite': False, 'constants': {}}
    with open(path, encoding='utf-8', errors='surrogateescape') as f:
        text = f.read(1024 * 1024)
    m = PREFIX_RE.search(text)
    return {'table_prefix': m.group(1) if m else None, 'multisite': bool(MULTISITE_RE.search(text)),
            'constants': read_constants(text)}


def kept_constants(constants, keep):
    """{name: value} of the constants to carry over; ImportRefused when one is not a literal there."""
    kept = {}
    for name in keep:
        if owned(name):
            raise ImportRefused('constant %s is Pressluft\'s own: it cannot be carried over' % name)
        if name not in constants:
            raise ImportRefused('keep constant %s: the imported wp-config.php does not define it' % name)
        value, literal = constants[name]
        if not literal:
            raise ImportRefused('keep constant %s: the imported wp-config.php defines it by an expression, '
                                'not a plain string, number, true, false or null (set it by hand)' % name)
        kept[name] = value
    return kept


def _open_dump(path):
    return gzip.open(path, 'rb') if path.endswith('.gz') else open(path, 'rb')


def _is_data(line):
    return line.startswith((b'INSERT ', b'REPLACE ', b'('))


def rewrite_dump(src, dst):
    """Copy the dump to dst (plain SQL) with MySQL 8 collations replaced and DEFINER clauses removed,
    in statements only (row data is never changed; lines are bytes, never decoded); return the tables
    it creates, the counts and its size."""
    tables, collations, definers, size = [], 0, 0, 0
    try:
        with contextlib.ExitStack() as stack:
            fin = stack.enter_context(_open_dump(src))
            fout = stack.enter_context(open(dst, 'wb'))
            for line in fin:
                if not _is_data(line):
                    m = CREATE_RE.match(line)
                    if m:
                        tables.append(m.group(1).decode('ascii'))
                    line, n = COLLATION_RE.subn(COLLATION_TARGET, line)
                    collations += n
                    line, n = DEFINER_RE.subn(definer_clause, line)
                    definers += n
                size += len(line)
                fout.write(line)
    except (OSError, EOFError, zlib.error) as exc:
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


def analyze(work, archive, rewritten_dump, free_bytes, keep_constants=()):
    """Unpack archive into work and analyse it; refuse (ImportRefused) what cannot be imported. Returns
    the analysis with the payload's paths; the rewritten dump is at rewritten_dump. An archive that is a
    directory (a tree pulled over SSH, links and special files left behind) is analysed where it is."""
    seconds = {}
    start = time.monotonic()
    if os.path.isdir(archive):
        work = archive
    else:
        unpack(archive, work)
    seconds['unpack'] = round(time.monotonic() - start, 2)
    payload = find_payload(work)
    config = read_wp_config(payload['wp_config'])
    kept = kept_constants(config['constants'], keep_constants)
    start = time.monotonic()
    dump = rewrite_dump(payload['dump'], rewritten_dump)
    seconds['rewrite_dump'] = round(time.monotonic() - start, 2)
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
        # Names only: a constant's value may be a key or a password.
        'custom_constants': [n for n in config['constants'] if not owned(n)],
        'constants_not_literal': [n for n, (_v, literal) in config['constants'].items()
                                  if not literal and not owned(n)],
        'constants_kept': list(kept),
        'seconds': seconds,
        'paths': {'core': payload['core'], 'wp_content': payload['wp_content'], 'dump': rewritten_dump,
                  'source_dump': payload['dump'], 'wp_config': payload['wp_config']},
        'kept': kept,
    }


def remove(path):
    shutil.rmtree(path, ignore_errors=True)


# An INSERT/REPLACE statement's table, with or without backticks or a database in front.
INSERT_RE = re.compile(br"^(?:INSERT|REPLACE)(?:\s+(?:LOW_PRIORITY|DELAYED|HIGH_PRIORITY|IGNORE))*"
                       br"\s+(?:INTO\s+)?(?:(?:`[^`]+`|\w+)\.)?(?:`([^`]+)`|(\w+))", re.I)
TABLE_NAME_RE = re.compile(r'^[A-Za-z0-9_]{1,64}$')


# The four forms wp_search_replace replaces (its option forms), as a dump writes them: a JSON-escaped slash
# (\/) is \\/ inside an SQL string.
URL_FORMS = (('http', b'http://'), ('https', b'https://'), ('http_escaped', b'http:\\\\/\\\\/'),
             ('https_escaped', b'https:\\\\/\\\\/'))


def url_host(url):
    """host[:port] of a URL: what every form of it a search-replace pass looks for has in common."""
    return url.split('://', 1)[-1].split('/', 1)[0]


def url_tables(dump, host):
    """(tables, forms): the tables whose rows in the (rewritten, plain) dump may hold host - the only ones a
    URL rewrite has to visit - and which of the four URL forms occur with it. Matched without regard to
    case, on the raw bytes (host has no character a dump escapes); rows written as hex literals (mysqldump
    --hex-blob) count as a match of every form. (None, None) means every table and form: a match before any
    INSERT or in a statement that is not rows, or a table name the search-replace module could not be
    given."""
    needle = host.lower().encode('utf-8')
    forms = [(name, prefix + needle) for name, prefix in URL_FORMS]
    found, seen, current = set(), set(), None
    with open(dump, 'rb') as f:
        for line in f:
            m = INSERT_RE.match(line)
            if m:
                current = (m.group(1) or m.group(2)).decode('utf-8', 'replace')
            elif not line.startswith(b'('):
                if needle in line.lower():  # a statement other than rows: a view, a trigger, a default
                    return None, None
                continue
            hex_rows = b'0x' in line
            lower = line.lower()
            if needle not in lower and not hex_rows:
                continue
            if current is None or not TABLE_NAME_RE.match(current):
                return None, None
            found.add(current)
            seen.update(name for name, form in forms if hex_rows or form in lower)
    return sorted(found), [name for name, _form in URL_FORMS if name in seen]

#!/usr/bin/python
# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: site_import
short_description: Import a WordPress site from an archive into a Pressluft environment, in phases
description:
  - The node side of job site_import (docs/import.md). Each O(state) is one phase; the playbook runs them in
    order with M(pressluft.wordpress.wp_search_replace) and role C(env_release) between them.
  - C(staged) changes nothing live. It downloads O(url) (or takes O(archive)), unpacks and analyses it
    (module_utils C(_import) - unsafe paths, links, devices, multisite, disk space refused; MySQL 8 collations
    rewritten, C(DEFINER) clauses stripped), builds the release tree in C(releases/.import-<release>) (the
    archive's WordPress, or for a C(wp-content)-only archive the live release's core with the imported
    C(wp-content)), and imports the dump as the environment user into a scratch database C(<db>_imp)
    (C(wp db query) reading it on stdin, which stops at the first error) through a temporary
    C(wp-config.php) in that tree (Pressluft's own, the imported one is never used). A dump that fails half
    way fails here. Returns the imported site's C(home) and the environment's.
  - C(swapped) makes the import live except for the code - the tree becomes C(releases/<release>) (root-owned,
    read-only, C(wp-config.php) and C(wp-content/uploads) linked to C(shared/)), the tables are exchanged in
    one C(RENAME TABLE) (the live ones move to C(<db>_pre); views, triggers and routines, which it cannot
    move, are saved with C(mysqldump), dropped and created again by the environment user),
    C(shared/wp-config.php) gets the imported table prefix, C(shared/constants.php) the kept constants, the
    imported uploads replace C(shared/uploads), the object cache is flushed. What it did is kept
    in the work directory for C(reverted).
  - C(reverted) undoes C(swapped) (tables, prefix, uploads); C(finished) drops the replaced tables after a
    successful switch; C(absent) removes whatever the import staged and never drops live data.
version_added: "1.0.0"
author:
  - Pressluft developers (@pressluft)
extends_documentation_fragment:
  - pressluft.wordpress.env
  - pressluft.wordpress.fencing
  - pressluft.wordpress.wp_cli
  - pressluft.wordpress.attributes
options:
  state:
    description: The phase to run.
    type: str
    choices: [staged, swapped, reverted, finished, absent]
    default: staged
  release:
    description: Name of the release the import builds (C(releases/<release>)).
    type: str
    required: true
  archive:
    description:
      - The archive on the node (C(.tar), C(.tar.gz), C(.tgz), C(.zip)).
      - O(state=staged) needs this or O(url).
    type: path
  url:
    description: URL of the archive, downloaded by the node; C(https://) unless O(allow_http=true).
    type: str
  pull:
    description:
      - Pull the site from another server over SSH instead of an archive - C(wp db export -
        --single-transaction) run there (WP-CLI must be on the remote user's PATH), then C(rsync) of the
        WordPress directory (links, devices and special files are not copied; top-level dumps are left
        out; C(wp-config.php) is read as text, never run, and removed from the release).
      - The node connects as root with O(pull.key), C(BatchMode), and the host key policy O(pull.host_key).
    type: dict
    suboptions:
      user:
        description: Remote user.
        type: str
        required: true
      host:
        description: Remote host name or address.
        type: str
        required: true
      port:
        description: Remote SSH port.
        type: int
        default: 22
      path:
        description: The remote WordPress directory (the one holding C(wp-load.php)).
        type: str
        required: true
      key:
        description: Private key on the node the connection uses.
        type: path
        default: /root/.ssh/id_ed25519
      host_key:
        description:
          - C(strict) - the remote host key must be in root's C(known_hosts) on the node already.
          - C(accept-new) - an unknown host key is accepted and recorded (trust on first use); a changed one
            is still refused.
        type: str
        choices: [strict, accept-new]
        default: strict
  keep_constants:
    description:
      - Constants of the imported C(wp-config.php) to carry over into C(shared/constants.php), which
        Pressluft's C(wp-config.php) loads. Each must be defined there as C(define('NAME', <literal>)) with
        a string, number, C(true), C(false) or C(null) (the file is read as text, never run), and must not be
        one Pressluft owns (C(DB_*), keys and salts, C(WP_HOME), C(WP_SITEURL), C(ABSPATH),
        C(WP_ENVIRONMENT_TYPE), C(WP_REDIS_*), paths, multisite).
      - O(state=swapped) writes the file (an import without them removes it); O(state=reverted) puts the old
        one back.
    type: list
    elements: str
    default: []
  remove_archive:
    description: Delete O(archive) once it is unpacked (the playbook's copy of the controller's archive).
    type: bool
    default: false
  allow_http:
    description: Accept an C(http://) O(url).
    type: bool
    default: false
  max_bytes:
    description: Largest archive O(url) may deliver; the download stops there and the import fails.
    type: int
    default: 10737418240
  table_prefix:
    description:
      - The imported table prefix (C(table_prefix) of O(state=staged)'s analysis).
      - Required by O(state=swapped), which writes it into C(shared/wp-config.php). Letters, digits and C(_),
        at most 32.
    type: str
  mysql_socket:
    description: MariaDB socket root uses (scratch database, grants, the table exchange).
    type: path
    default: /run/mysqld/mysqld.sock
attributes:
  check_mode:
    support: partial
    details: Validates the input and reports nothing changed; no phase runs (each needs the one before).
  diff_mode:
    support: none
'''

EXAMPLES = r'''
- name: Stage the import (nothing live changes)
  pressluft.wordpress.site_import:
    site: shop
    env: production
    release: 20261206T140000Z-17
    url: https://backups.example.com/shop.tar.gz
    fencing_token: "{{ pressluft_fencing_token | default(omit) }}"
  register: import_stage

- name: Make the database and uploads live
  pressluft.wordpress.site_import:
    site: shop
    release: 20261206T140000Z-17
    state: swapped
    table_prefix: "{{ import_stage.table_prefix }}"
'''

RETURN = r'''
analysis:
  description:
    - What the analysis found (docs/import.md) - wordpress_version, table_prefix, sizes,
      collations_rewritten, definers_stripped, php_in_uploads.
  returned: state=staged
  type: dict
from_url:
  description: The imported site's C(home) option.
  returned: state=staged
  type: str
to_url:
  description: The environment's C(home) before the import; the URLs are rewritten to it.
  returned: state=staged
  type: str
build:
  description: The release tree being built, whose temporary C(wp-config.php) reaches the scratch database.
  returned: state=staged
  type: str
had_site:
  description: Whether the environment had an installed WordPress before the import.
  returned: state=staged
  type: bool
url_tables:
  description:
    - The imported tables whose rows hold the imported C(home)'s host (the only ones the URL rewrite has to
      visit), found in the dump; null when every table must be visited.
  returned: state=staged
  type: list
  elements: str
url_forms:
  description:
    - Which of the URL forms M(pressluft.wordpress.wp_search_replace) replaces (C(http), C(https),
      C(http_escaped), C(https_escaped)) occur with that host in the dump; null when all must be tried.
  returned: state=staged
  type: list
  elements: str
timings:
  description: Seconds per step of the phase (where an import spends its time; benchmarks/import.py).
  returned: always
  type: dict
table_prefix:
  description: The environment's table prefix after the phase.
  returned: always
  type: str
'''

import contextlib
import json
import os
import re
import shlex
import shutil
import subprocess
import time

from ansible.module_utils.urls import open_url
from ansible_collections.pressluft.wordpress.plugins.module_utils._env import WP_CLI_ARGSPEC, env_module
from ansible_collections.pressluft.wordpress.plugins.module_utils._import import (
    DEFINER_RE,
    ImportRefused,
    analyze,
    definer_clause,
    url_host,
    url_tables,
)
from ansible_collections.pressluft.wordpress.plugins.module_utils._php_constants import (
    NAME_RE,
    constants_php,
    owned,
)
from ansible_collections.pressluft.wordpress.plugins.module_utils._releases import valid_release

PREFIX_LINE = re.compile(r"^\$table_prefix = '([A-Za-z0-9_]{1,32})';$", re.M)
PREFIX_OK = re.compile(r'^[A-Za-z0-9_]{1,32}$')
SSH_USER_RE = re.compile(r'^[a-z_][a-z0-9_.-]{0,31}$')
SSH_HOST_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$')
SSH_PATH_RE = re.compile(r'^/[A-Za-z0-9._/-]{0,500}$')
CHUNK = 1024 * 1024
OBJECT_KINDS = ('view', 'trigger', 'procedure', 'function')


def _check(p, names):
    if not valid_release(p['release']):
        raise ValueError('invalid release %r' % p['release'])
    if p['state'] == 'staged' and [bool(p['archive']), bool(p['url']), bool(p['pull'])].count(True) != 1:
        raise ValueError('give exactly one of archive, url and pull')
    if p['pull']:
        pull = p['pull']
        if not (SSH_USER_RE.match(pull['user']) and SSH_HOST_RE.match(pull['host'])
                and SSH_PATH_RE.match(pull['path']) and '..' not in pull['path'].split('/')
                and 0 < pull['port'] < 65536):
            raise ValueError('invalid pull source: user [a-z_][a-z0-9_.-], host letters, digits, . and -, '
                             'an absolute path of letters, digits, . _ / - and a port 1-65535')
    if p['url'] and not re.match(r'^https://' if not p['allow_http'] else r'^https?://', p['url']):
        raise ValueError('the archive URL must be https:// (allow_http permits http://)')
    for name in p['keep_constants']:
        if not NAME_RE.match(name) or owned(name):
            raise ValueError('keep_constants: %r is not a constant name or is one Pressluft owns (DB_*, keys '
                             'and salts, WP_HOME, WP_SITEURL, ABSPATH, WP_ENVIRONMENT_TYPE, WP_REDIS_*, ...)'
                             % name[:70])
    if len(names['db_name']) > 60:
        raise ValueError('database name %s is too long for the scratch databases' % names['db_name'])


class Import(object):
    def __init__(self, module, names):
        self.module = module
        self.n = names
        p = module.params
        self.work = '%s/.import-%s' % (names['root'], p['release'])
        self.build = '%s/.import-%s' % (names['releases'], p['release'])
        self.release = '%s/%s' % (names['releases'], p['release'])
        self.dump = '%s/pressluft-import-%s.sql' % (names['tmp'], p['release'])
        self.imp = names['db_name'] + '_imp'
        self.pre = names['db_name'] + '_pre'
        self.journal = self.work + '/journal.json'
        self.constants = names['shared'] + '/constants.php'
        self.staged_constants = self.work + '/constants.php'
        self.timings = {}

    @contextlib.contextmanager
    def timed(self, step):
        start = time.monotonic()
        try:
            yield
        finally:
            self.timings[step] = round(self.timings.get(step, 0) + time.monotonic() - start, 2)

    # -- tools --------------------------------------------------------------------------------------
    def run(self, argv, what, cwd=None):
        rc, out, err = self.module.run_command(argv, cwd=cwd)
        if rc != 0:
            raise ImportRefused('%s failed (rc=%d): %s' % (what, rc, (err.strip() or out.strip())[-1500:]))
        return out

    def wp(self, path, args, what):
        argv = ['runuser', '-u', self.n['user'], '--', self.module.params['wp_cli'], '--path=%s' % path,
                '--skip-plugins', '--skip-themes', *args]
        return self.run(argv, what, cwd=self.n['tmp'])

    def sql(self, statement, what):
        argv = ['mysql', '--protocol=socket', '--socket=%s' % self.module.params['mysql_socket'], '--batch',
                '--skip-column-names']
        rc, out, err = self.module.run_command(argv, data=statement, binary_data=False)
        if rc != 0:
            raise ImportRefused('%s: MariaDB said (rc=%d): %s' % (what, rc, err.strip()[-1500:]))
        return out

    def objects(self, db):
        """{kind: [names]} of a database: base tables, views, triggers, procedures, functions. The names
        are read as hex: they come from the dump (data), and the client's batch output escapes some bytes."""
        out = self.sql(
            "SELECT 'table', HEX(TABLE_NAME) FROM information_schema.TABLES WHERE TABLE_SCHEMA='%s' "
            "AND TABLE_TYPE='BASE TABLE' UNION ALL SELECT 'view', HEX(TABLE_NAME) FROM "
            "information_schema.VIEWS WHERE TABLE_SCHEMA='%s' UNION ALL SELECT 'trigger', HEX(TRIGGER_NAME) "
            "FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA='%s' UNION ALL SELECT "
            "LOWER(ROUTINE_TYPE), HEX(ROUTINE_NAME) FROM information_schema.ROUTINES "
            "WHERE ROUTINE_SCHEMA='%s';" % ((db,) * 4),
            'listing %s' % db)
        found = dict((kind, []) for kind in ('table', *OBJECT_KINDS))
        for line in out.splitlines():
            kind, _tab, name = line.partition('\t')
            found[kind].append(bytes.fromhex(name).decode('utf-8', 'surrogateescape'))
        return found

    # -- views, triggers and routines: RENAME TABLE cannot take them (nor a table with triggers) to
    # another database, so they are dumped by mysqldump, dropped, and loaded again where the tables went.
    def save_objects(self, db, path):
        """The database's views, triggers and routines into path (plain SQL for the mysql client, without
        DEFINER; a view SQL SECURITY INVOKER); whether it had any."""
        found = self.objects(db)
        if not any(found[k] for k in OBJECT_KINDS):
            return False
        base = ['mysqldump', '--protocol=socket', '--socket=%s' % self.module.params['mysql_socket'],
                '--skip-comments', '--no-tablespaces', '--skip-lock-tables', '--single-transaction']
        out = self.run([*base, '--no-data', '--no-create-info', '--triggers', '--routines', '--', db],
                       'saving the triggers and routines of %s' % db)
        if found['view']:
            out += self.run([*base, '--no-data', '--skip-triggers', '--', db, *found['view']],
                            'saving the views of %s' % db)
        out = DEFINER_RE.sub(definer_clause, out.encode('utf-8', 'surrogateescape'))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, 'wb') as f:
            f.write(out)
        os.chown(path, _uid(self.n['user']), -1)
        return True

    def drop_objects(self, db):
        found = self.objects(db)
        drops = ['DROP %s IF EXISTS %s.%s;' % (kind.upper(), q(db), q(name))
                 for kind in OBJECT_KINDS for name in found[kind]]
        if drops:
            self.sql(' '.join(drops), 'removing the views, triggers and routines of %s' % db)

    def load_objects(self, path, wordpress):
        """path into the database wordpress's wp-config.php names, as the environment user (what the dump
        defines never runs as root)."""
        argv = ['runuser', '-u', self.n['user'], '--', self.module.params['wp_cli'], '--path=%s' % wordpress,
                '--skip-plugins', '--skip-themes', 'db', 'query']
        with open(path, 'rb') as sql:
            proc = subprocess.run(argv, stdin=sql, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  cwd=self.n['tmp'], check=False)
        if proc.returncode != 0:
            raise ImportRefused('creating the views, triggers and routines failed (rc=%d): %s' % (
                proc.returncode, proc.stderr.decode('utf-8', 'replace').strip()[-1500:]))

    def live_prefix(self):
        with open(self.n['wp_config']) as f:
            m = PREFIX_LINE.search(f.read())
        if not m:
            raise ImportRefused('%s has no $table_prefix line Pressluft wrote' % self.n['wp_config'])
        return m.group(1)

    def write_config(self, path, text, mode=0o640):
        tmp = path + '.import-tmp'
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, 'w', encoding='utf-8', errors='surrogateescape') as f:
            f.write(text)
        st = os.stat(self.n['wp_config'])
        os.chown(tmp, 0, st.st_gid)
        os.chmod(tmp, mode)
        os.rename(tmp, path)

    # -- staged -------------------------------------------------------------------------------------
    def download(self, url, dest):
        limit = self.module.params['max_bytes']
        try:
            resp = open_url(url, timeout=60, validate_certs=True, follow_redirects='safe')
            total = 0
            with open(dest, 'wb') as f:
                while True:
                    chunk = resp.read(CHUNK)
                    if not chunk:
                        break
                    total += len(chunk)
                    if total > limit:
                        raise ImportRefused('the archive at the URL is larger than max_bytes (%d)' % limit)
                    f.write(chunk)
        except ImportRefused:
            raise
        except Exception as exc:  # urllib's errors vary by Python version; any failure is the download's
            raise ImportRefused('downloading the archive failed: %s' % exc) from None

    def ssh_argv(self):
        pull = self.module.params['pull']
        policy = 'yes' if pull['host_key'] == 'strict' else 'accept-new'
        return ['ssh', '-i', pull['key'], '-p', str(pull['port']), '-o', 'BatchMode=yes', '-o',
                'IdentitiesOnly=yes', '-o', 'StrictHostKeyChecking=%s' % policy, '-o', 'ConnectTimeout=20']

    def pull(self, dest):
        """The remote site's dump, then its files, into dest/site (analysed like an unpacked archive)."""
        pull = self.module.params['pull']
        if not os.path.isfile(pull['key']):
            raise ImportRefused('the key %s does not exist on the node' % pull['key'])
        remote = '%s@%s' % (pull['user'], pull['host'])
        site = dest + '/site'
        os.makedirs(site, 0o700)
        # The remote side runs this through its shell: the path is whitelisted and quoted.
        command = 'wp --path=%s db export - --single-transaction' % shlex.quote(pull['path'])
        with open(site + '/pressluft-pulled.sql', 'wb') as out:
            proc = subprocess.run([*self.ssh_argv(), '--', remote, command], stdout=out,
                                  stderr=subprocess.PIPE, timeout=6 * 3600, check=False)
        if proc.returncode != 0:
            raise ImportRefused('wp db export on %s failed (rc=%d): %s' % (
                remote, proc.returncode, proc.stderr.decode('utf-8', 'replace').strip()[-1500:]))
        uploads = self.remote_uploads(remote)
        # wp-config.php comes along to be read as text (table prefix, --keep-constant), never run. Links are
        # never copied, except that wp-content/uploads is followed when it is one (below).
        rsync = ['rsync', '-rt', '--no-links', '--no-devices', '--no-specials', '-e',
                 ' '.join(self.ssh_argv())]
        base = pull['path'].rstrip('/')
        self.run([*rsync, '--exclude=/*.sql', '--exclude=/*.sql.gz', '--exclude=/wp-content/uploads', '--',
                  '%s:%s/' % (remote, base), site + '/'], 'rsync from %s' % remote)
        if uploads:
            # The trailing slash makes the remote side resolve the link itself: only this path is followed.
            os.makedirs(site + '/wp-content/uploads', 0o700, exist_ok=True)
            self.run([*rsync, '--', '%s:%s/wp-content/uploads/' % (remote, base),
                      site + '/wp-content/uploads/'], 'rsync of the uploads from %s' % remote)

    def remote_uploads(self, remote):
        """Whether the remote tree has wp-content/uploads (a directory or a link to one). A link is followed
        wherever it points - it is the uploads directory itself - but never to / or to the tree or one of
        its parents, which would copy the tree into itself."""
        path = shlex.quote(self.module.params['pull']['path'])
        command = 'cd -- %s && pwd -P && { cd wp-content/uploads 2>/dev/null && pwd -P || true; }' % path
        proc = subprocess.run([*self.ssh_argv(), '--', remote, command], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=120, check=False)
        lines = proc.stdout.decode('utf-8', 'replace').splitlines()
        if proc.returncode != 0 or not lines:
            raise ImportRefused('reading %s on %s failed (rc=%d): %s' % (
                self.module.params['pull']['path'], remote, proc.returncode,
                proc.stderr.decode('utf-8', 'replace').strip()[-1500:]))
        tree, uploads = lines[0], (lines[1] if len(lines) > 1 else '')
        if uploads and (uploads == '/' or (tree + '/').startswith(uploads.rstrip('/') + '/')):
            raise ImportRefused('wp-content/uploads on %s points to %s, the WordPress tree or a directory '
                                'above it: refused' % (remote, uploads[:300]))
        return uploads

    def stage(self):
        p = self.module.params
        with self.timed('clean'):
            self.absent()
        os.makedirs(self.work, 0o700)
        archive = p['archive']
        if p['url']:
            archive = self.work + '/archive'
            with self.timed('download'):
                self.download(p['url'], archive)
        if p['pull']:
            archive = self.work + '/unpacked'
            with self.timed('pull'):
                self.pull(archive)
        elif not os.path.isfile(archive):
            raise ImportRefused('the archive %s does not exist on the node' % archive)
        st = os.statvfs(self.n['root'])
        with self.timed('unpack_analyse'):
            analysis = analyze(self.work + '/unpacked', archive, self.dump, st.f_bavail * st.f_frsize,
                               p['keep_constants'])
        if p['url'] or (p['archive'] and p['remove_archive']):
            os.unlink(archive)
        os.chown(self.dump, _uid(self.n['user']), -1)
        os.chmod(self.dump, 0o600)
        paths = analysis.pop('paths')
        kept = analysis.pop('kept')
        if kept:
            with open(self.staged_constants, 'w', encoding='utf-8', errors='surrogateescape') as f:
                f.write(constants_php(kept))
        had_site = os.path.isfile(os.path.join(self.n['current'], 'wp-load.php'))
        with self.timed('read_home'):
            to_url = self.wp(self.n['current'], ['option', 'get', 'home'],
                             'reading the environment\'s home') if had_site else ''
        with self.timed('build_tree'):
            self.build_tree(paths, analysis['wp_content_only'])
        self.write_config(self.build + '/wp-config.php', self.scratch_config(analysis['table_prefix']))
        self.sql('DROP DATABASE IF EXISTS `{0}`; CREATE DATABASE `{0}` CHARACTER SET utf8mb4; '
                 "GRANT ALL ON `{0}`.* TO '{1}'@'localhost';".format(self.imp, self.n['db_user']),
                 'creating the scratch database')
        with self.timed('import_dump'):
            self.import_dump()
        found = self.objects(self.imp)
        analysis['objects'] = dict((k, len(found[k])) for k in OBJECT_KINDS)
        from_url = self.wp(self.build, ['db', 'query', '--skip-column-names',
                                        "SELECT option_value FROM `%soptions` WHERE option_name='home'"
                                        % analysis['table_prefix']], 'reading the imported home').strip()
        with self.timed('url_tables'):
            tables, forms = url_tables(self.dump, url_host(from_url)) if from_url else (None, None)
        return dict(analysis=analysis, from_url=from_url, to_url=to_url.strip(), build=self.build,
                    had_site=had_site, table_prefix=analysis['table_prefix'], url_tables=tables,
                    url_forms=forms, timings=self.timings)

    def import_dump(self):
        """The dump into the scratch database as the environment user, through `wp db query` reading it
        on stdin: the mysql client then stops at the first error and fails (`wp db import` SOURCEs the
        file, goes on past errors and exits 0 with half a database)."""
        argv = ['runuser', '-u', self.n['user'], '--', self.module.params['wp_cli'], '--path=%s' % self.build,
                '--skip-plugins', '--skip-themes', 'db', 'query']
        with open(self.dump, 'rb') as dump:
            proc = subprocess.run(argv, stdin=dump, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  cwd=self.n['tmp'], check=False)
        if proc.returncode != 0:
            raise ImportRefused('the dump failed to import (nothing live changed; rc=%d): %s' % (
                proc.returncode, proc.stderr.decode('utf-8', 'replace').strip()[-1500:]))

    def build_tree(self, paths, wp_content_only):
        uploads = self.work + '/uploads'
        if wp_content_only:
            live = os.path.realpath(self.n['current'])
            if not os.path.isfile(os.path.join(live, 'wp-load.php')):
                raise ImportRefused('the archive holds only wp-content and the environment has no live '
                                    'release to take WordPress core from')
            self.run(['cp', '-a', '--', live, self.build], 'copying the live core')
            shutil.rmtree(self.build + '/wp-content')
            os.rename(paths['wp_content'], self.build + '/wp-content')
        else:
            os.rename(paths['core'], self.build)
            src = os.path.relpath(paths['source_dump'], paths['core'])
            if not src.startswith('..') and os.path.isfile(os.path.join(self.build, src)):
                os.unlink(os.path.join(self.build, src))
        for name in ('wp-config.php',):
            if os.path.lexists(os.path.join(self.build, name)):
                os.unlink(os.path.join(self.build, name))
        os.makedirs(self.build + '/wp-content', exist_ok=True)
        up = self.build + '/wp-content/uploads'
        if os.path.isdir(up) and not os.path.islink(up):
            os.rename(up, uploads)
        else:
            if os.path.lexists(up):
                os.unlink(up)
            os.mkdir(uploads)
        self.run(['chown', '-R', '-h', 'root:root', self.build], 'owning the release')
        self.run(['chmod', '-R', 'u=rwX,go=rX', self.build], 'making the release read-only')
        os.chmod(self.build, 0o755)

    def scratch_config(self, prefix):
        """Pressluft's wp-config.php of the environment aimed at the scratch database, imported prefix and
        its own object-cache key space (a drop-in must not read the live site's cache)."""
        with open(self.n['wp_config']) as f:
            text = f.read()
        db = "define('DB_NAME', '%s');" % self.n['db_name']
        if db not in text or not PREFIX_LINE.search(text):
            raise ImportRefused('%s is not the wp-config.php Pressluft wrote' % self.n['wp_config'])
        text = text.replace(db, "define('DB_NAME', '%s');" % self.imp)
        text = PREFIX_LINE.sub(lambda m: "$table_prefix = '%s';" % prefix, text)
        rp = self.n['redis_prefix']
        return text.replace("'%s'" % rp, "'%simport:'" % rp)

    # -- swapped / reverted -------------------------------------------------------------------------
    def swap(self, journal):
        if not os.path.isdir(self.release):
            if not os.path.isdir(self.build):
                raise ImportRefused('nothing staged: run state=staged first')
            os.unlink(self.build + '/wp-config.php')
            os.symlink(self.n['wp_config'], self.build + '/wp-config.php')
            os.symlink(self.n['uploads'], self.build + '/wp-content/uploads')
            for link in ('/wp-config.php', '/wp-content/uploads'):
                os.lchown(self.build + link, 0, 0)
            os.rename(self.build, self.release)
        if not journal.get('tables'):
            db = self.n['db_name']
            if 'objects' not in journal:
                journal['objects'] = {'live': self.save_objects(db, self.work + '/objects-live.sql'),
                                      'imported': self.save_objects(self.imp, self.work + '/objects-imp.sql')}
                self.save(journal)
            self.drop_objects(db)
            self.drop_objects(self.imp)
            live, imp = self.objects(db)['table'], self.objects(self.imp)['table']
            if not imp:
                raise ImportRefused('the scratch database %s holds no tables' % self.imp)
            moves = ['%s.%s TO %s.%s' % (q(db), q(t), q(self.pre), q(t)) for t in live]
            moves += ['%s.%s TO %s.%s' % (q(self.imp), q(t), q(db), q(t)) for t in imp]
            self.sql('CREATE DATABASE IF NOT EXISTS %s CHARACTER SET utf8mb4; RENAME TABLE %s;'
                     % (q(self.pre), ', '.join(moves)), 'exchanging the tables')
            journal.update(tables={'live': live, 'imported': imp})
            self.save(journal)
            if journal['objects']['imported']:
                self.load_objects(self.work + '/objects-imp.sql', self.release)
        if 'prefix' not in journal:
            old, new = self.live_prefix(), self.module.params['table_prefix']
            with open(self.n['wp_config']) as f:
                text = f.read()
            journal['prefix'] = old
            self.save(journal)
            text = PREFIX_LINE.sub(lambda m: "$table_prefix = '%s';" % new, text)
            self.write_config(self.n['wp_config'], text, os.stat(self.n['wp_config']).st_mode & 0o777)
        if 'constants' not in journal:
            # The old file is kept (or its absence noted) before the new one replaces it.
            old = os.path.isfile(self.constants)
            if old:
                shutil.copy2(self.constants, self.work + '/constants.php.old')
            journal['constants'] = old
            self.save(journal)
            self.put_constants(self.staged_constants)
        if not journal.get('uploads'):
            staged = self.work + '/uploads'
            st = os.stat(self.n['uploads'])
            self.run(['chown', '-R', '%d:%d' % (st.st_uid, st.st_gid), staged], 'owning the uploads')
            self.run(['chmod', '-R', 'u=rwX,g=rX,o=', staged], 'setting the uploads\' modes')
            os.chmod(staged, st.st_mode & 0o7777)
            os.rename(self.n['uploads'], self.work + '/uploads.old')
            os.rename(staged, self.n['uploads'])
            journal['uploads'] = True
            self.save(journal)
        self.wp(self.n['current'], ['cache', 'flush'], 'flushing the object cache')

    def revert(self, journal):
        if journal.get('uploads'):
            os.rename(self.n['uploads'], self.work + '/uploads')
            os.rename(self.work + '/uploads.old', self.n['uploads'])
            journal['uploads'] = False
            self.save(journal)
        if 'constants' in journal:
            self.put_constants(self.work + '/constants.php.old' if journal['constants'] else None)
            del journal['constants']
            self.save(journal)
        if 'prefix' in journal:
            with open(self.n['wp_config']) as f:
                text = f.read()
            self.write_config(self.n['wp_config'],
                              PREFIX_LINE.sub(lambda m: "$table_prefix = '%s';" % journal['prefix'], text),
                              os.stat(self.n['wp_config']).st_mode & 0o777)
            del journal['prefix']
            self.save(journal)
        db = self.n['db_name']
        if journal.get('tables'):
            t = journal['tables']
            self.drop_objects(db)  # the imported ones: saved in objects-imp.sql
            moves = ['%s.%s TO %s.%s' % (q(db), q(x), q(self.imp), q(x)) for x in t['imported']]
            moves += ['%s.%s TO %s.%s' % (q(self.pre), q(x), q(db), q(x)) for x in t['live']]
            self.sql('RENAME TABLE %s;' % ', '.join(moves), 'putting the tables back')
            journal['tables'] = None
            self.save(journal)
        if journal.get('objects'):
            if journal['objects']['live']:
                self.load_objects(self.work + '/objects-live.sql', self.n['current'])
            journal['objects'] = None
            self.save(journal)
        if os.path.isfile(os.path.join(self.n['current'], 'wp-load.php')):
            self.wp(self.n['current'], ['cache', 'flush'], 'flushing the object cache')

    def put_constants(self, source):
        """shared/constants.php becomes source's content (root-owned, the environment group's to read), or
        goes when source is None or missing."""
        if source and os.path.isfile(source):
            with open(source, encoding='utf-8', errors='surrogateescape') as f:
                self.write_config(self.constants, f.read())
        elif os.path.lexists(self.constants):
            os.unlink(self.constants)

    def load(self):
        if os.path.isfile(self.journal):
            with open(self.journal) as f:
                return json.load(f)
        return {}

    def save(self, journal):
        with open(self.journal + '.tmp', 'w') as f:
            json.dump(journal, f)
        os.rename(self.journal + '.tmp', self.journal)

    # -- finished / absent --------------------------------------------------------------------------
    def absent(self, drop_pre=False):
        journal = self.load()
        if journal.get('tables') or journal.get('uploads') or 'prefix' in journal or 'constants' in journal:
            if not drop_pre:
                raise ImportRefused('the import is live in part (%s): revert it (state=reverted) or finish '
                                    'it first' % self.journal)
        pre = 'DROP DATABASE IF EXISTS `%s`; ' % self.pre if drop_pre else ''
        if not drop_pre and self.sql("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA='%s';"
                                     % self.pre, 'reading %s' % self.pre).strip() == '0':
            pre = 'DROP DATABASE IF EXISTS `%s`; ' % self.pre
        self.sql("%sDROP DATABASE IF EXISTS `%s`;" % (pre, self.imp), 'removing the scratch database')
        try:
            self.sql("REVOKE ALL PRIVILEGES ON `%s`.* FROM '%s'@'localhost';" % (self.imp, self.n['db_user']),
                     'revoking the scratch grant')
        except ImportRefused as exc:
            if 'ERROR 1141' not in str(exc):  # no such grant: nothing to revoke
                raise
        for path in (self.build, self.work):
            shutil.rmtree(path, ignore_errors=True)
        if os.path.lexists(self.dump):
            os.unlink(self.dump)


def q(name):
    """A MariaDB identifier, quoted: a name from the dump is data, a backtick in it is doubled."""
    return '`' + name.replace('`', '``') + '`'


def _uid(user):
    import pwd
    return pwd.getpwnam(user).pw_uid


def main():
    argument_spec = dict(
        state=dict(type='str', choices=['staged', 'swapped', 'reverted', 'finished', 'absent'],
                   default='staged'),
        release=dict(type='str', required=True),
        archive=dict(type='path'),
        url=dict(type='str'),
        pull=dict(type='dict', options=dict(
            user=dict(type='str', required=True),
            host=dict(type='str', required=True),
            port=dict(type='int', default=22),
            path=dict(type='str', required=True),
            key=dict(type='path', default='/root/.ssh/id_ed25519'),
            host_key=dict(type='str', choices=['strict', 'accept-new'], default='strict'),
        )),
        keep_constants=dict(type='list', elements='str', default=[], no_log=False),
        remove_archive=dict(type='bool', default=False),
        allow_http=dict(type='bool', default=False),
        max_bytes=dict(type='int', default=10 * 1024 ** 3),
        table_prefix=dict(type='str'),
        mysql_socket=dict(type='path', default='/run/mysqld/mysqld.sock'),
    )
    argument_spec.update(WP_CLI_ARGSPEC)
    module, names = env_module(argument_spec, check=_check)
    p = module.params
    if p['table_prefix'] is not None and not PREFIX_OK.match(p['table_prefix']):
        module.fail_json(msg='invalid table_prefix %r: letters, digits and _ (at most 32)'
                             % p['table_prefix'][:40])
    if p['state'] == 'swapped' and not p['table_prefix']:
        module.fail_json(msg='state=swapped needs table_prefix (from state=staged)')
    if module.check_mode:
        module.exit_json(changed=False)
    imp = Import(module, names)
    try:
        if not os.path.isfile(names['wp_config']):
            raise ImportRefused('%s has no wp-config.php: create the environment first (site create)'
                                % names['root'])
        if p['state'] == 'staged':
            module.exit_json(changed=True, **imp.stage())
        journal = imp.load()
        with imp.timed(p['state']):
            if p['state'] == 'swapped':
                imp.swap(journal)
            elif p['state'] == 'reverted':
                imp.revert(journal)
            elif p['state'] == 'finished':
                imp.absent(drop_pre=True)
            else:
                imp.absent()
        module.exit_json(changed=True, table_prefix=imp.live_prefix(), timings=imp.timings)
    except ImportRefused as exc:
        if p['state'] == 'staged':
            try:
                imp.absent()
            except ImportRefused:
                pass
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg='%s: %s' % (p['state'], exc))


if __name__ == '__main__':
    main()

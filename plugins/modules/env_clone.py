#!/usr/bin/python
# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: env_clone
short_description: Fill a Pressluft environment with a consistent snapshot of another one of the same site
description:
  - Checks the fencing token of the site first, so a stale job changes nothing.
  - The database - C(wp db export --single-transaction) run as the source environment's user (one consistent
    read, no lock on the live site), then C(wp db reset) and C(wp db import) as the target's user, so the
    target database holds exactly the source's tables.
  - The code (with O(code=true)) - the source's live release (what its C(current) points at) copied under the
    same name into the target's C(releases/), its links into the source tree (C(wp-config.php),
    C(wp-content/uploads)) pointed at the target's; then the target's C(current) points at it. With it goes
    the source's C(shared/constants.php) (constants an import carried over; root-owned, the target group's to
    read), or the target's is removed when the source has none.
  - The uploads (with O(uploads=true)) - C(rsync --delete) from the source's C(shared/uploads) (C(cp -a) into
    a snapshot), owned by the target's user, run beside the copy of the code and the database.
  - URLs are not rewritten here - M(pressluft.wordpress.wp_search_replace) does it from the C(source_url)
    this module returns. Both environments must exist (role site_env).
  - With O(step=snapshot) and then O(step=fill) the copy runs in two parts, so the first runs while the
    target is being created (playbook env_create.yml). The snapshot needs only the source - it starts a
    process of its own, detached from the module run, that copies the source's database export, live
    release and uploads into a root-only directory C(.clone-<env>) beside the site's environments, and
    returns at once. The fill waits for that process, moves what it took into the target (renames, not
    copies), imports the database as the target's user and removes the directory; a failed snapshot fails
    the fill with its error. Both copy everything (no O(tables), all of O(database), O(uploads), O(code)).
version_added: "1.0.0"
author:
  - Pressluft developers (@pressluft)
extends_documentation_fragment:
  - pressluft.wordpress.env
  - pressluft.wordpress.fencing
  - pressluft.wordpress.wp_cli
  - pressluft.wordpress.attributes
options:
  source_env:
    description: The environment copied (same site); never the target O(env).
    type: str
    default: production
  database:
    description: Copy the database.
    type: bool
    default: true
  uploads:
    description: Copy the uploads.
    type: bool
    default: true
  code:
    description: Copy the live release and point the target's C(current) at it.
    type: bool
    default: true
  tables:
    description:
      - Copy only these tables of the database (with O(database=true)) - C(wp db export --tables) as the
        source's user and C(wp db import) as the target's; the import replaces each table whole and leaves
        every other table of the target alone (no C(wp db reset)). Each must be a table of the source.
      - Empty copies the whole database.
    type: list
    elements: str
    default: []
  step:
    description:
      - V(all) copies in one run.
      - V(snapshot) reads the source into C(.clone-<env>) beside the site's environments (the target need not
        exist yet); V(fill) moves that snapshot into the target, which must exist, and removes it.
    type: str
    choices: [all, snapshot, fill]
    default: all
attributes:
  check_mode:
    description: Reads the source (its release and URL) and reports what would be copied; changes nothing.
    support: full
  diff_mode:
    support: none
'''

EXAMPLES = r'''
- name: Fill shop/staging from shop/production
  pressluft.wordpress.env_clone:
    site: shop
    env: staging
    source_env: production
    fencing_token: "{{ pressluft_fencing_token | default(omit) }}"
  register: clone

- name: Pull only the content down again
  pressluft.wordpress.env_clone:
    site: shop
    env: staging
    code: false

- name: Snapshot shop/production while shop/staging is created
  pressluft.wordpress.env_clone:
    site: shop
    env: staging
    step: snapshot

# ... create the environment (role pressluft.wordpress.site_env) ...

- name: Fill shop/staging from the snapshot
  pressluft.wordpress.env_clone:
    site: shop
    env: staging
    step: fill
'''

RETURN = r'''
source_url:
  description: The source's C(home) option, as WP-CLI reads it before the copy.
  returned: success, unless O(step=snapshot)
  type: str
  sample: https://shop.example.com
release:
  description: The name of the source's live release (copied when O(code=true)).
  returned: success
  type: str
  sample: 20261206T101500Z
staging:
  description: The directory the snapshot is taken into.
  returned: with O(step=snapshot)
  type: str
  sample: /var/www/sites/shop/.clone-staging
copied:
  description: What was copied (or would be, in check mode).
  returned: success
  type: list
  elements: str
  sample: [database, code, uploads]
database_bytes:
  description: Size of the database export.
  returned: when the database was copied
  type: int
target_url:
  description: The target's C(home) option before the copy (what the source's URL is rewritten to).
  returned: when O(tables) is given
  type: str
rows:
  description:
    - Rows per table of the copy right after the import, which are the source's at the snapshot (the
      baseline against which a drift report tells the source's later writes per table).
  returned: when the database was copied
  type: dict
url_tables:
  description:
    - The tables whose rows in the copied dump hold the source's host, for
      M(pressluft.wordpress.wp_search_replace)'s O(pressluft.wordpress.wp_search_replace#module:tables);
      null means every table (the dump could not be read that precisely).
  returned: when the whole database was copied
  type: list
  elements: str
url_forms:
  description:
    - The URL forms of the source's host that occur in those rows, for
      M(pressluft.wordpress.wp_search_replace)'s O(pressluft.wordpress.wp_search_replace#module:forms); a
      form that does not occur needs no pass. Null means all four.
  returned: when the whole database was copied
  type: list
  elements: str
'''

import fcntl
import json
import os
import pwd
import re
import shutil
import tempfile

from ansible_collections.pressluft.wordpress.plugins.module_utils import _background as background
from ansible_collections.pressluft.wordpress.plugins.module_utils._env import (
    WP_CLI_ARGSPEC,
    env_module,
)
from ansible_collections.pressluft.wordpress.plugins.module_utils._import import url_host, url_tables
from ansible_collections.pressluft.wordpress.plugins.module_utils._names import env_names
from ansible_collections.pressluft.wordpress.plugins.module_utils._releases import valid_release
from ansible_collections.pressluft.wordpress.plugins.module_utils._wp_cli import WpCli, WpCliError

TABLE_RE = re.compile(r'^[A-Za-z0-9_$]{1,64}$')
SNAPSHOT_FILE = 'snapshot.json'
ERROR_FILE = 'error.json'


class CloneError(Exception):
    pass


def _check(p, names):
    source = env_names(names['site'], p['source_env'])
    if source['env'] == names['env']:
        raise ValueError('source_env %r is the environment itself: clone from another environment'
                         % p['source_env'])
    if not (p['database'] or p['uploads'] or p['code']):
        raise ValueError('nothing to copy: set database, uploads or code')
    if p['run_as']:
        raise ValueError('run_as does not apply: each side runs WP-CLI as its own environment user')
    bad = [t for t in p['tables'] if not TABLE_RE.match(t) or '$' in t]
    if bad:
        raise ValueError('invalid table names %r: letters, digits and _ only' % bad[:5])
    if p['tables'] and not p['database']:
        raise ValueError('tables are copied with database=true')
    if p['step'] != 'all' and (p['tables'] or not (p['database'] and p['uploads'] and p['code'])):
        raise ValueError('step=%s copies everything: leave tables empty and database, uploads, code true'
                         % p['step'])
    p['source'] = source


def staging_dir(target):
    """Beside the site's environments (the same file system, so the fill renames), named by the target."""
    return os.path.join(os.path.dirname(target['root']), '.clone-' + target['env'])


def require_tree(names):
    if not os.path.isdir(names['root']) or not os.path.isfile(names['wp_config']):
        raise CloneError('%s has no environment tree with a wp-config.php: create %s first (role '
                         'site_env)' % (names['root'], names['name']))


def own_tree(top, uid, gid):
    """chown -R without following links (rsync --chown does this in the one-step copy)."""
    os.lchown(top, uid, gid)
    for base, dirs, files in os.walk(top):
        for entry in dirs + files:
            os.lchown(os.path.join(base, entry), uid, gid)


class Clone(object):
    def __init__(self, module, source, target):
        self.module = module
        self.source = source
        self.target = target

    def run(self, argv, what):
        rc, out, err = self.module.run_command(argv)
        if rc != 0:
            raise CloneError('%s failed (rc=%d): %s' % (what, rc, (err.strip() or out.strip())[-2000:]))
        return out

    def wp(self, names, path, args):
        return WpCli(self.module, names['user'], path, label=names['name']).out(args)

    def source_url(self):
        return self.wp(self.source, self.source['current'], ['option', 'get', 'home']).strip()

    def live_release(self):
        current = self.source['current']
        if not os.path.islink(current):
            raise CloneError('%s is not a release link: the source environment has no live release'
                             % current)
        real = os.path.realpath(current)
        name = os.path.basename(real)
        if os.path.dirname(real) != os.path.realpath(self.source['releases']) or not valid_release(name):
            raise CloneError('%s points at %s, outside %s' % (current, real, self.source['releases']))
        return name, real

    def export(self, dest, tables=()):
        """wp db export --single-transaction as the source user into its own tmp, then moved to dest (root's
        until load() hands it over). Returns its size."""
        src_file = os.path.join(self.source['tmp'], 'pressluft-clone-%d.sql' % os.getpid())
        try:
            only = ['--tables=%s' % ','.join(tables)] if tables else []
            self.wp(self.source, self.source['current'],
                    ['db', 'export', src_file, '--single-transaction', *only])
            shutil.move(src_file, dest)
            os.chown(dest, 0, 0)
            os.chmod(dest, 0o600)
            return os.path.getsize(dest)
        finally:
            if os.path.lexists(src_file):
                os.unlink(src_file)

    def load(self, dump, whole):
        """Import dump as the target user; returns the rows per table. A whole copy resets the database first:
        tables the target has and the source lacks would survive a plain import. Named tables are dropped and
        recreated by the dump itself, the others stay."""
        dst_file = os.path.join(self.target['tmp'], 'pressluft-clone-%d.sql' % os.getpid())
        try:
            shutil.move(dump, dst_file)
            os.chown(dst_file, pwd.getpwnam(self.target['user']).pw_uid, -1)
            # A new environment's database is empty: no reset (a WP-CLI start) for it.
            if whole and self.mysql('SHOW TABLES', 'listing the tables').strip():
                self.wp(self.target, self.target['current'], ['db', 'reset', '--yes'])
            self.wp(self.target, self.target['current'], ['db', 'import', dst_file])
            return self.row_counts()
        finally:
            if os.path.lexists(dst_file):
                os.unlink(dst_file)

    def copy_database(self, tables=(), host=None):
        """Returns (bytes, rows per table, (url tables, url forms) of `host` in the dump of a whole database):
        the target database becomes exactly the dump, so what it holds of the source's host is what the URL
        rewrite has to visit (the passes of the other forms would find nothing)."""
        dump = os.path.join(self.target['tmp'], 'pressluft-clone-%d.export.sql' % os.getpid())
        try:
            size = self.export(dump, tables)
            scan = url_tables(dump, host) if host and not tables else (None, None)
            return size, self.load(dump, whole=not tables), scan
        finally:
            if os.path.lexists(dump):
                os.unlink(dump)

    def mysql(self, query, what):
        """A query of the target's database as root over MariaDB's socket (WP-CLI would start PHP and
        WordPress's config for each)."""
        return self.run([self.module.get_bin_path('mysql', required=True), '--batch', '--skip-column-names',
                         '--database=%s' % self.target['db_name'], '-e', query], what)

    def tables(self):
        """The target's tables; names that no query could hold safely are left out."""
        return [t for t in self.mysql('SHOW TABLES', 'listing the tables').split() if TABLE_RE.match(t)]

    def row_counts(self):
        """{table: rows} of the target."""
        tables = self.tables()
        if not tables:
            return {}
        query = ' UNION ALL '.join("SELECT '%s', COUNT(*) FROM `%s`" % (t, t) for t in sorted(tables))
        out = self.mysql(query, 'counting the rows')
        rows = {}
        for line in out.splitlines():
            name, _tab, count = line.partition('\t')
            rows[name] = int(count)
        return rows

    def copy_tree(self, real, tree):
        """The release's files at tree, its links into the source tree pointed at the target's."""
        self.run(['cp', '-a', '--', real, tree], 'copying release %s' % os.path.basename(real))
        self._relink(tree)

    def place_release(self, name, tree=None, real=None):
        """The release under the same name in the target's releases/ (tree renamed in, or copied from real
        beside the others and renamed), then the target's current pointed at it."""
        dest = os.path.join(self.target['releases'], name)
        if not os.path.isdir(dest):
            work = tempfile.mkdtemp(prefix='.clone-%s-' % name, dir=self.target['releases'])
            try:
                if tree is None:
                    tree = os.path.join(work, 'tree')
                    self.copy_tree(real, tree)
                os.rename(tree, dest)
            finally:
                shutil.rmtree(work, ignore_errors=True)
        current = self.target['current']
        if os.path.exists(current) and not os.path.islink(current):
            raise CloneError('%s exists and is not a symlink' % current)
        tmp = '%s.tmp-%d' % (current, os.getpid())
        os.symlink(dest, tmp)
        os.rename(tmp, current)

    def copy_constants(self):
        """shared/constants.php (an import's kept constants) as the source has it, or none."""
        src = os.path.join(self.source['shared'], 'constants.php')
        dst = os.path.join(self.target['shared'], 'constants.php')
        if os.path.islink(src):  # shared/ is root's; a link there was not made by Pressluft
            raise CloneError('%s is a symlink: refused' % src)
        if not os.path.isfile(src):
            if os.path.lexists(dst):
                os.unlink(dst)
            return
        tmp = '%s.tmp-%d' % (dst, os.getpid())
        shutil.copyfile(src, tmp)
        os.chown(tmp, 0, os.stat(self.target['wp_config']).st_gid)
        os.chmod(tmp, 0o640)
        os.rename(tmp, dst)

    def _relink(self, tree):
        """Links into the source tree (wp-config.php, uploads) point at the same place in the target's."""
        prefix = self.source['root'] + '/'
        for top, dirs, files in os.walk(tree):
            for entry in dirs + files:
                path = os.path.join(top, entry)
                if not os.path.islink(path):
                    continue
                link = os.readlink(path)
                if link.startswith(prefix):
                    os.unlink(path)
                    os.symlink(self.target['root'] + '/' + link[len(prefix):], path)
                    os.lchown(path, 0, 0)

    def start_uploads(self, dest, snapshot=False):
        """The uploads copied beside the database copy (file copying and MariaDB's import use different
        resources): rsync --delete owned by the target's user, or for a snapshot into its new, empty
        directory a plain `cp -a` (one process copying in the kernel, where rsync pipes every byte from
        one process to another: less CPU taken from the job running meanwhile)."""
        if snapshot:
            return background.start([self.module.get_bin_path('cp', required=True), '-a', '--',
                                     self.source['uploads'] + '/.', dest])
        return background.start([self.module.get_bin_path('rsync', required=True), '-a', '--delete',
                                 '--chown=%s:www-data' % self.target['user'], '--',
                                 self.source['uploads'] + '/', dest + '/'])

    def move_uploads(self, staged):
        """The staged uploads in place of the target's (as rsync --delete leaves them), owned by its user."""
        dest = self.target['uploads']
        for entry in os.listdir(dest):
            path = os.path.join(dest, entry)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
        own_tree(staged, pwd.getpwnam(self.target['user']).pw_uid, pwd.getpwnam('www-data').pw_gid)
        for entry in os.listdir(staged):
            os.rename(os.path.join(staged, entry), os.path.join(dest, entry))


def with_uploads(proc, work):
    """Run work() while the uploads' rsync proc runs; it is stopped when work fails."""
    try:
        out = work()
    except BaseException:
        if proc is not None:  # the job fails with the first error; rsync is not left running
            background.stop(proc)
        raise
    if proc is not None:
        background.finish(proc, 'copying the uploads')
    return out


def copy_all(module, clone, result):
    """The one-step copy (step=all)."""
    p = module.params
    source, target = clone.source, clone.target
    if p['tables']:
        have = clone.wp(source, source['current'], ['db', 'tables', '--all-tables']).split()
        missing = [t for t in p['tables'] if t not in have]
        if missing:
            raise CloneError('%s has no tables %s' % (source['name'], ', '.join(missing)))
        result['target_url'] = clone.wp(target, target['current'], ['option', 'get', 'home']).strip()
    if not p['code'] and not os.path.isdir(os.path.join(target['current'], 'wp-includes')):
        raise CloneError('%s has no live release: clone the code too (code=true)' % target['name'])
    if module.check_mode:
        return

    def work():
        if p['code']:
            clone.place_release(result['release'], real=clone.live_release()[1])
            clone.copy_constants()
        if p['database']:
            result['database_bytes'], result['rows'], scan = clone.copy_database(
                p['tables'], url_host(result['source_url']))
            if not p['tables']:
                result['url_tables'], result['url_forms'] = scan

    with_uploads(clone.start_uploads(target['uploads']) if p['uploads'] else None, work)


def take_snapshot(clone, result, staging):
    """The source's uploads, live release and database export into staging, and its description."""
    real = clone.live_release()[1]

    def work():
        clone.copy_tree(real, os.path.join(staging, 'release'))
        result['source_url'] = clone.source_url()
        dump = os.path.join(staging, 'database.sql')
        result['database_bytes'] = clone.export(dump)
        result['url_tables'], result['url_forms'] = url_tables(dump, url_host(result['source_url']))

    os.mkdir(os.path.join(staging, 'uploads'), 0o700)
    with_uploads(clone.start_uploads(os.path.join(staging, 'uploads'), snapshot=True), work)
    return result


def snapshot(clone, result, staging):
    """step=snapshot: start take_snapshot() detached and return. The worker holds an exclusive lock on
    staging/lock until it wrote snapshot.json (or error.json): the fill waits for that lock."""
    if os.path.lexists(staging):  # a run that failed before its fill, unless its worker still runs
        with open(os.path.join(staging, 'lock'), 'a') as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise CloneError('a snapshot into %s is still being taken' % staging) from None
        shutil.rmtree(staging)
    os.mkdir(staging, 0o700)
    lock = open(os.path.join(staging, 'lock'), 'w')
    fcntl.flock(lock, fcntl.LOCK_EX)  # the worker inherits it; it ends with the worker

    def work():
        try:
            name, out = SNAPSHOT_FILE, take_snapshot(clone, dict(result), staging)
        except Exception as exc:  # the fill reports it
            name, out = ERROR_FILE, dict(msg='the snapshot of %s failed: %s' % (clone.source['name'], exc))
        with open(os.path.join(staging, name + '.tmp'), 'w') as f:
            json.dump(out, f)
        os.rename(os.path.join(staging, name + '.tmp'), os.path.join(staging, name))

    background.detach(work)
    lock.close()
    result['staging'] = staging


def fill(clone, result, staging):
    """step=fill: wait for the snapshot's worker, then move what it took into the target."""
    try:
        with open(os.path.join(staging, 'lock')) as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
    except OSError as exc:
        raise CloneError('no snapshot at %s (%s): run step=snapshot first' % (staging, exc)) from exc
    for name in (ERROR_FILE, SNAPSHOT_FILE):
        try:
            with open(os.path.join(staging, name)) as f:
                snap = json.load(f)
            break
        except (OSError, ValueError):
            snap = None
    if snap is None:
        raise CloneError('the snapshot at %s ended without a result: take it again' % staging)
    if 'msg' in snap:
        raise CloneError(snap['msg'])
    if snap.get('release') != result['release'] or not valid_release(snap['release']):
        raise CloneError('the snapshot at %s holds release %r, the source is at %s now: take it again'
                         % (staging, snap.get('release'), result['release']))
    clone.place_release(snap['release'], tree=os.path.join(staging, 'release'))
    clone.copy_constants()
    clone.move_uploads(os.path.join(staging, 'uploads'))
    result['rows'] = clone.load(os.path.join(staging, 'database.sql'), whole=True)
    for key in ('source_url', 'database_bytes', 'url_tables', 'url_forms'):
        result[key] = snap[key]
    shutil.rmtree(staging)


def main():
    argument_spec = dict(
        source_env=dict(type='str', default='production'),
        database=dict(type='bool', default=True),
        uploads=dict(type='bool', default=True),
        code=dict(type='bool', default=True),
        tables=dict(type='list', elements='str', default=[]),
        step=dict(type='str', choices=['all', 'snapshot', 'fill'], default='all'),
    )
    argument_spec.update(WP_CLI_ARGSPEC)
    module, target = env_module(argument_spec, check=_check)
    p = module.params
    source = p['source']
    result = dict(changed=False, copied=[k for k in ('database', 'code', 'uploads') if p[k]])
    try:
        for names in (source,) if p['step'] == 'snapshot' else (source, target):
            require_tree(names)
        clone = Clone(module, source, target)
        result['release'] = clone.live_release()[0]
        if p['step'] == 'all' or module.check_mode:  # a snapshot reads it in its worker, a fill from it
            result['source_url'] = clone.source_url()
        result['changed'] = True
        if p['step'] == 'all' or module.check_mode:
            copy_all(module, clone, result)
        elif p['step'] == 'snapshot':
            snapshot(clone, result, staging_dir(target))
        else:
            fill(clone, result, staging_dir(target))
    except (CloneError, WpCliError, background.BackgroundError, OSError, KeyError) as exc:
        module.fail_json(msg=str(exc), **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()

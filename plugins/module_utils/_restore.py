# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""state=restored of the backup module: verify everything first, then change the environment in the
order that can be undone (database import with a fallback dump, then renames of prepared files)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import gzip
import os
import shutil

from ansible_collections.pressluft.wordpress.plugins.module_utils._backup import (
    MANIFEST,
    RESTIC_STATE,
    read_manifest,
    table_rows,
    verify,
    write_json,
)
from ansible_collections.pressluft.wordpress.plugins.module_utils._releases import valid_release
from ansible_collections.pressluft.wordpress.plugins.module_utils._restic import ResticError


def _fetch(module, restic, names, backup_dir, dest, result):
    """Restore the snapshot of the backup from restic into dest (there is no local copy)."""
    backup_id = module.params['id']
    tags = ['pressluft', names['name'], 'id:%s' % backup_id]
    try:
        snaps = restic.snapshots(tags)
    except ResticError as exc:
        module.fail_json(msg=str(exc), **result)
    if not snaps:
        msg = 'backup %s exists neither in %s nor in %s' % (backup_id, dest, restic.repository)
        module.fail_json(msg=msg, **result)
    if module.check_mode:
        result.update(changed=True, restic_snapshot=snaps[-1]['short_id'])
        module.exit_json(**result)
    for path in (os.path.dirname(backup_dir), backup_dir):
        if not os.path.isdir(path):
            os.makedirs(path, 0o700)
    staging = os.path.join(backup_dir, '.%s.partial' % backup_id)
    if os.path.lexists(staging):
        shutil.rmtree(staging)
    os.mkdir(staging, 0o700)
    try:
        restic.restore(snaps[-1]['id'], staging)
    except ResticError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        module.fail_json(msg=str(exc), **result)
    if not os.path.isfile(os.path.join(staging, MANIFEST)):
        shutil.rmtree(staging, ignore_errors=True)
        module.fail_json(msg='restic snapshot %s holds no %s' % (snaps[-1]['short_id'], MANIFEST), **result)
    state = dict(repository=restic.repository, snapshot=snaps[-1]['short_id'])
    write_json(os.path.join(staging, RESTIC_STATE), state)
    os.rename(staging, dest)
    result['restic_snapshot'] = snaps[-1]['short_id']


def _copy_owned(src, dest, like):
    """Copy src to dest with the owner and mode of the file like (0600 root when like is missing)."""
    shutil.copyfile(src, dest)
    try:
        st = os.stat(like)
        os.chown(dest, st.st_uid, st.st_gid)
        os.chmod(dest, st.st_mode & 0o7777)
    except OSError:
        os.chmod(dest, 0o600)


def _rows(path):
    with open(path, 'r', encoding='utf-8', errors='surrogateescape') as f:
        return table_rows(f)


def _import_db(module, env, dump_gz, tables):
    """wp db import of the backup's dump; the database is put back as it was when the import fails.

    mysql's SOURCE (which wp db import uses) goes on after a failed statement and exits 0, so
    success is judged by the result: a fresh dump must hold the manifest's row count in every table.
    """
    work, entry = env.private_dir()
    try:
        before = os.path.join(work, 'before.sql')
        env.wp(['db', 'export', before, '--single-transaction'])
        restore = os.path.join(work, 'restore.sql')
        with gzip.open(dump_gz, 'rb') as src, open(restore, 'wb') as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        os.chown(restore, entry.pw_uid, entry.pw_gid)
        os.chmod(restore, 0o600)
        rc, out, err = env.wp(['db', 'import', restore], check=False)
        error = None
        if rc != 0 or 'ERROR' in err:
            error = 'wp db import failed (rc=%d): %s' % (rc, (err or out).strip()[-2000:])
        else:
            after = os.path.join(work, 'after.sql')
            env.wp(['db', 'export', after, '--single-transaction'])
            found = _rows(after)
            wrong = sorted(t for t, n in (tables or {}).items() if found.get(t) != n)
            if wrong:
                error = 'wp db import failed: after the import %s' % ', '.join(
                    '%s has %s rows, not %d' % (t, found.get(t), tables[t]) for t in wrong[:5])
        if error:
            back_rc, _o, back_err = env.wp(['db', 'import', before], check=False)
            state = 'was put back' if back_rc == 0 else 'could NOT be put back (%s)' % back_err.strip()
            return '%s; the database %s' % (error, state)
        return None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _own_like(tree, like):
    """rebuild: the archive's numeric owners are the old node's; give the tree this node's owners of
    the environment's (empty, new) uploads directory: users get other ids on another node."""
    st = os.stat(like)
    for top, dirs, files in os.walk(tree):
        os.lchown(top, st.st_uid, st.st_gid)
        for name in dirs + files:
            os.lchown(os.path.join(top, name), st.st_uid, st.st_gid)


def _rebuild_release(module, env, dest, manifest, result):
    """rebuild: core.tar unpacked as a root-owned release beside the others, then current points at it.

    Runs before the database import: WP-CLI needs a release to load. The archive was verified against
    the manifest; it must hold exactly the release the manifest names (no other top-level entry).
    """
    release = manifest.get('release')
    if not valid_release(release):
        module.fail_json(msg='the manifest names no valid release (%r); nothing was restored' % (release,),
                         **result)
    releases = os.path.join(env.root, 'releases')
    if not os.path.isdir(releases):
        os.makedirs(releases, 0o755)
    work = os.path.join(releases, '.rebuild-%d' % os.getpid())
    os.mkdir(work, 0o700)
    try:
        # --no-same-owner: the release belongs to root on this node whatever the archive recorded.
        module.run_command(['tar', '--extract', '--no-same-owner', '--same-permissions', '--file',
                            os.path.join(dest, 'core.tar'), '-C', work], check_rc=True)
        if os.listdir(work) != [release] or not os.path.isdir(os.path.join(work, release)):
            module.fail_json(msg='core.tar holds %s, not release %s alone; nothing was restored'
                             % (', '.join(sorted(os.listdir(work))[:5]), release), **result)
        os.chmod(work, 0o755)
        target = os.path.join(releases, release)
        if os.path.lexists(target):
            if os.path.realpath(env.current) == os.path.realpath(target):
                module.fail_json(msg='%s is live on this node: rebuild is for an environment without one'
                                 % target, **result)
            shutil.rmtree(target)  # left by an earlier, failed rebuild
        os.rename(os.path.join(work, release), target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if os.path.lexists(env.current) and not os.path.islink(env.current):
        module.fail_json(msg='%s exists and is not a symlink' % env.current, **result)
    link = '%s.tmp-%d' % (env.current, os.getpid())
    os.symlink(target, link)
    os.rename(link, env.current)
    result['release'] = release


def restore(module, names, env, backup_dir, dest, restic):
    p = module.params
    result = dict(changed=False, id=p['id'], location=dest, restored=False)
    if read_manifest(dest) is None:
        if restic is None or os.path.lexists(dest):
            module.fail_json(msg='no complete backup %s in %s' % (p['id'], dest), **result)
        _fetch(module, restic, names, backup_dir, dest, result)
    manifest = read_manifest(dest)
    result['manifest'] = manifest
    if (manifest.get('site'), manifest.get('env')) != (names['site'], names['env']):
        module.fail_json(msg='%s holds a backup of %s_%s, not of %s'
                         % (dest, manifest.get('site'), manifest.get('env'), names['name']), **result)
    # Nothing is touched unless every artifact matches the manifest.
    problems = verify(dest, manifest)
    if problems:
        module.fail_json(msg='backup %s does not match its manifest, nothing was restored: %s'
                         % (p['id'], '; '.join(problems)), problems=problems, **result)
    result['changed'] = True
    if module.check_mode:
        module.exit_json(**result)
    have = set(a['name'] for a in manifest['artifacts'])
    if p['rebuild']:
        if 'core.tar' not in have or 'db.sql.gz' not in have or 'uploads.tar' not in have:
            module.fail_json(msg='backup %s holds %s: rebuilding an environment needs a full backup with its '
                             'release (core.tar, taken with include_core); nothing was restored'
                             % (p['id'], ', '.join(sorted(have))), **result)
        # This node's wp-config.php holds this node's secrets (Redis ACL password, salts): keep it.
        have.discard('wp-config.php')
        _rebuild_release(module, env, dest, manifest, result)
    suffix = '.restore-%d' % os.getpid()
    new_uploads_dir = os.path.join(env.shared, '.uploads' + suffix)
    new_config = os.path.join(env.shared, '.wp-config.php' + suffix)
    old_uploads = os.path.join(env.shared, '.uploads.old-%d' % os.getpid())
    try:
        # 1. Prepare the files next to the live ones (same file system, so the swap is a rename).
        if 'uploads.tar' in have:
            os.mkdir(new_uploads_dir, 0o700)
            module.run_command(['tar', '--extract', '--numeric-owner', '--same-owner', '--same-permissions',
                                '--file', os.path.join(dest, 'uploads.tar'), '-C', new_uploads_dir],
                               check_rc=True)
            if not os.path.isdir(os.path.join(new_uploads_dir, 'uploads')):
                module.fail_json(msg='uploads.tar holds no uploads/; nothing was restored', **result)
            if p['rebuild']:
                _own_like(os.path.join(new_uploads_dir, 'uploads'), env.uploads)
        if 'wp-config.php' in have:
            _copy_owned(os.path.join(dest, 'wp-config.php'), new_config, env.wp_config)
        # 2. The database: the step most likely to fail, and undone when it does.
        if 'db.sql.gz' in have:
            error = _import_db(module, env, os.path.join(dest, 'db.sql.gz'), manifest.get('tables'))
            if error:
                module.fail_json(msg='%s; the files were not touched' % error, **result)
        # 3. Swap the files in.
        if 'uploads.tar' in have:
            moved = False
            if os.path.lexists(env.uploads):
                os.rename(env.uploads, old_uploads)
                moved = True
            try:
                os.rename(os.path.join(new_uploads_dir, 'uploads'), env.uploads)
            except OSError:
                if moved:
                    os.rename(old_uploads, env.uploads)
                raise
        if 'wp-config.php' in have:
            os.rename(new_config, env.wp_config)
    finally:
        for path in (new_uploads_dir, old_uploads):
            if os.path.lexists(path):
                shutil.rmtree(path, ignore_errors=True)
        if os.path.lexists(new_config):
            os.unlink(new_config)
    # Only a persistent object cache (a drop-in) can serve pre-restore data. Without one, loading
    # WordPress for a flush would only write (first-load options, cron) into the restored database.
    if 'db.sql.gz' in have and os.path.exists(os.path.join(env.current, 'wp-content', 'object-cache.php')):
        rc, _out, err = env.wp(['cache', 'flush'], check=False)
        if rc != 0:
            module.warn('wp cache flush failed after the restore: %s' % err.strip())
    release, _dir = env.release()
    if not p['rebuild'] and manifest.get('release') and release != manifest.get('release'):
        module.warn('the backup was taken on release %s; current is %s (code is not restored)'
                    % (manifest.get('release'), release))
    result['restored'] = True
    module.exit_json(**result)

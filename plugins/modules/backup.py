#!/usr/bin/python
# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: backup
short_description: Back up, restore and remove backups of a Pressluft site environment
version_added: "1.0.0"
description:
  - O(state=present) creates backup O(id) in C(<backup_dir>/<id>/) (directory C(0700), files C(0600), owned
    by root) unless a complete backup with that id exists. It holds C(db.sql.gz) (C(wp db export
    --single-transaction) run as the environment's user, compressed with C(gzip -n --rsyncable)),
    C(uploads.tar) and C(wp-config.php)
    (and C(core.tar) of the current release with O(include_core)), and C(manifest.json) with the id, site,
    environment, scope, creation time, WordPress version, release id, each artifact's size and SHA-256 and
    the row count of every table in the dump.
  - Archives are deterministic (sorted names, numeric owners, file mtimes), so an unchanged tree gives the
    same bytes; an unchanged tree's archive from an earlier backup is hard-linked instead of written again.
  - With O(restic_repository), the backup directory is then sent to restic (the repository is initialised
    when it does not exist) with tags C(pressluft), C(<site>_<env>) and C(id:<id>), with the newest earlier
    snapshot of the environment as parent, so unchanged artifacts are neither read nor uploaded again.
    When restic fails the task fails and the local backup is kept (its location is returned).
  - O(state=restored) verifies the size and SHA-256 of every artifact against the manifest before it touches
    the environment (fetching the backup from restic first when there is no local copy). Then it imports the
    dump with C(wp db import) (the current database is exported first and imported back when the import
    fails),
    unpacks the uploads next to C(shared/uploads) and swaps them in by rename, and replaces C(wp-config.php).
  - O(state=absent) removes the local backup directory and forgets and prunes the restic snapshots of O(id).
author:
  - Pressluft developers (@pressluft)
extends_documentation_fragment:
  - pressluft.wordpress.env
  - pressluft.wordpress.fencing
  - pressluft.wordpress.wp_cli
attributes:
  check_mode:
    description: Reports what would change; O(state=restored) still verifies the checksums.
    support: full
  diff_mode:
    description: Not supported.
    support: none
  platform:
    description: Debian nodes with WP-CLI, GNU tar, gzip and, for O(restic_repository), restic.
    support: full
    platforms: debian
options:
  id:
    description: Backup id, 1-64 letters, digits, dots, underscores and dashes; starts with a letter or digit.
    type: str
    required: true
  state:
    description: Whether the backup exists, is restored into the environment, or is removed.
    type: str
    choices: [present, restored, absent]
    default: present
  scope:
    description: What O(state=present) backs up; C(full) is the database and the files.
    type: str
    choices: [full, db, files]
    default: full
  include_core:
    description: Also archive the current release tree (WordPress core, themes and plugins of the release).
    type: bool
    default: false
  rebuild:
    description:
      - With O(state=restored), rebuild the environment on a node that does not hold its code (disaster
        recovery, C(pressluft restore --to)). The backup must be full and hold C(core.tar). Its release is
        unpacked as a root-owned release under C(releases/) and C(current) points at it before the database
        is imported; the node's own C(wp-config.php) is kept (it holds this node's Redis and salt secrets).
      - Refused when the release of the backup is already live on the node.
    type: bool
    default: false
  root:
    description: The environment's tree; defaults to C(/var/www/sites/<site>/<env>).
    type: path
  backup_dir:
    description: The environment's local backups; defaults to C(/var/backups/pressluft/<site>_<env>).
    type: path
  restic_repository:
    description:
      - restic repository, such as C(/srv/restic), C(sftp:user@host:/srv/restic) or C(s3:http://host:port/bucket/prefix).
    type: str
  restic_password:
    description: Password of the restic repository; required with O(restic_repository).
    type: str
  s3_access_key_id:
    description: Access key id for an S3 repository (passed to restic as C(AWS_ACCESS_KEY_ID)).
    type: str
  s3_secret_access_key:
    description: Secret access key for an S3 repository (passed to restic as C(AWS_SECRET_ACCESS_KEY)).
    type: str
notes:
  - Secrets reach restic through its environment, never its command line.
  - Tables created after the backup are left in place by a restore (like C(wp db import)).
'''

EXAMPLES = r'''
- name: Back up the shop's production environment to the node and to S3
  pressluft.wordpress.backup:
    site: shop
    env: production
    id: "20260101T030000Z"
    restic_repository: s3:https://s3.example.com/backups/shop
    restic_password: "{{ pressluft_restic_password }}"
    s3_access_key_id: "{{ pressluft_s3_access_key_id }}"
    s3_secret_access_key: "{{ pressluft_s3_secret_access_key }}"
    fencing_token: "{{ pressluft_fencing_token | default(omit) }}"

- name: Restore that backup
  pressluft.wordpress.backup:
    site: shop
    id: "20260101T030000Z"
    state: restored

- name: Remove an expired backup locally
  pressluft.wordpress.backup:
    site: shop
    id: "20251201T030000Z"
    state: absent
'''

RETURN = r'''
id:
  description: The backup id.
  returned: always
  type: str
  sample: "20260101T030000Z"
location:
  description: Local directory of the backup (also when the restic step failed).
  returned: always
  type: str
  sample: /var/backups/pressluft/shop_production/20260101T030000Z
manifest:
  description: The manifest (id, site, env, scope, created, wordpress_version, release, artifacts, tables).
  returned: when the backup exists locally
  type: dict
restic_snapshot:
  description: Id of the restic snapshot holding the backup.
  returned: when O(restic_repository) is set
  type: str
  sample: 4f2a9c1e
restic_data_added:
  description: Bytes restic added to the repository for this backup (0 when it was already there).
  returned: when O(restic_repository) is set
  type: int
  sample: 51234
restored:
  description: Whether the environment was restored from the backup.
  returned: state is restored
  type: bool
release:
  description: The release unpacked from C(core.tar) and made live.
  returned: O(state=restored) with O(rebuild=true)
  type: str
  sample: "20260101T030000Z"
'''

import datetime
import json
import os
import pwd
import shutil
import stat
import tempfile
import time

from ansible_collections.pressluft.wordpress.plugins.module_utils._backup import (
    FORMAT,
    MANIFEST,
    RESTIC_STATE,
    TAR_CREATE,
    previous_artifact,
    read_manifest,
    sha256_file,
    table_rows,
    tree_fingerprint,
    valid_id,
    write_json,
)
from ansible_collections.pressluft.wordpress.plugins.module_utils._env import (
    WP_CLI_ARGSPEC,
    check_run_as,
    env_module,
)
from ansible_collections.pressluft.wordpress.plugins.module_utils._restic import Restic, ResticError
from ansible_collections.pressluft.wordpress.plugins.module_utils._restore import restore
from ansible_collections.pressluft.wordpress.plugins.module_utils._wp_cli import WpCli, WpCliError
from ansible_collections.pressluft.wordpress.plugins.module_utils._wp_release import release_version

BACKUP_ROOT = '/var/backups/pressluft'


class Env(object):
    """Paths of the environment and WP-CLI as its user."""

    def __init__(self, module, names):
        p = module.params
        self.module = module
        self.root = p['root'] or names['root']
        self.shared = os.path.join(self.root, 'shared')
        self.uploads = os.path.join(self.shared, 'uploads')
        self.wp_config = os.path.join(self.shared, 'wp-config.php')
        self.current = os.path.join(self.root, 'current')
        self.tmp = os.path.join(self.root, 'tmp')
        self.user = p['run_as']  # filled and checked by check_run_as

    def release(self):
        """(release id, release dir) that current points at, or (None, None)."""
        if not os.path.islink(self.current):
            return None, None
        target = os.path.join(os.path.dirname(self.current), os.readlink(self.current))
        return os.path.basename(os.path.normpath(target)), os.path.normpath(target)

    def wp(self, args, check=True):
        """(rc, stdout, stderr) of WP-CLI as the environment's user; a failure fails the module if check."""
        try:
            return WpCli(self.module, self.user, self.current, cwd=self.tmp).run(args, check=check)
        except WpCliError as exc:
            self.module.fail_json(msg=str(exc))

    def private_dir(self):
        """A fresh directory in the environment's tmp/ that only its user can use (for dumps)."""
        path = tempfile.mkdtemp(prefix='.pressluft-backup-', dir=self.tmp)
        entry = pwd.getpwnam(self.user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
        return path, entry

    def export_db(self, into):
        """Dump the database as the env user; return an open file object of the dump (opened safely)."""
        work, entry = self.private_dir()
        try:
            dump = os.path.join(work, 'db.sql')
            self.wp(['db', 'export', dump, '--single-transaction'])
            fd = os.open(dump, os.O_RDONLY | os.O_NOFOLLOW)
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_uid != entry.pw_uid:
                os.close(fd)
                self.module.fail_json(msg='the dump %s is not a regular file of %s' % (dump, self.user))
            with os.fdopen(fd, 'rb') as src:
                out_fd = os.open(into, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(out_fd, 'wb') as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
        finally:
            shutil.rmtree(work, ignore_errors=True)


def _tar(module, archive, parent, member):
    module.run_command(['tar', *TAR_CREATE, '--file', archive, '-C', parent, '--', member], check_rc=True)
    os.chmod(archive, 0o600)


def _artifact(path, **extra):
    entry = dict(name=os.path.basename(path), size=os.path.getsize(path), sha256=sha256_file(path))
    entry.update(extra)
    return entry


def _tree_artifact(module, backup_dir, backup_id, staging, name, parent, member):
    """uploads.tar / core.tar: hard-linked from an earlier backup when the tree is unchanged."""
    fingerprint = tree_fingerprint(parent, member)
    target = os.path.join(staging, name)
    earlier, entry = previous_artifact(backup_dir, backup_id, name, fingerprint)
    if earlier:
        os.link(earlier, target)
        return dict(entry, reused=True)
    _tar(module, target, parent, member)
    return _artifact(target, fingerprint=fingerprint)


def _create(module, names, env, dest, backup_dir):
    p = module.params
    staging = os.path.join(backup_dir, '.%s.partial' % p['id'])
    if os.path.lexists(staging):
        shutil.rmtree(staging)
    os.mkdir(staging, 0o700)
    artifacts, tables = [], {}
    now = datetime.datetime.now(datetime.timezone.utc)  # before the dump: the state the backup holds
    release, release_dir = env.release()
    if p['scope'] in ('full', 'db'):
        dump = os.path.join(staging, 'db.sql')
        env.export_db(dump)
        with open(dump, 'r', encoding='utf-8', errors='surrogateescape') as f:
            tables = table_rows(f)
        module.run_command(['gzip', '-n', '--rsyncable', dump], check_rc=True)
        artifacts.append(_artifact(dump + '.gz'))
    if p['scope'] in ('full', 'files'):
        if not os.path.isdir(env.uploads):
            module.fail_json(msg='%s does not exist' % env.uploads)
        artifacts.append(_tree_artifact(module, backup_dir, p['id'], staging, 'uploads.tar',
                                        env.shared, 'uploads'))
        config = os.path.join(staging, 'wp-config.php')
        shutil.copyfile(env.wp_config, config)
        os.chmod(config, 0o600)
        artifacts.append(_artifact(config))
        if p['include_core']:
            if not release_dir or not os.path.isdir(release_dir):
                module.fail_json(msg='include_core: %s does not point at a release' % env.current)
            artifacts.append(_tree_artifact(module, backup_dir, p['id'], staging, 'core.tar',
                                            os.path.dirname(release_dir), release))
    manifest = dict(
        format=FORMAT, id=p['id'], site=names['site'], env=names['env'], scope=p['scope'],
        include_core=p['include_core'], created=now.strftime('%Y-%m-%dT%H:%M:%SZ'),
        wordpress_version=release_version(release_dir) if release_dir else None, release=release,
        artifacts=artifacts, tables=tables)
    write_json(os.path.join(staging, MANIFEST), manifest)
    os.rename(staging, dest)  # the backup is complete or absent, never half there
    return manifest


def _ensure_dir(path):
    if not os.path.isdir(path):
        os.makedirs(path, 0o700)
    os.chmod(path, 0o700)


def _restic(module):
    p = module.params
    if not p['restic_repository']:
        return None
    if not p['restic_password']:
        module.fail_json(msg='restic_password is required with restic_repository')
    return Restic(module, p['restic_repository'], p['restic_password'], p['s3_access_key_id'],
                  p['s3_secret_access_key'])


def _push(module, restic, names, dest, result):
    """Send dest to restic unless its restic.json says it is already there; fills result."""
    p = module.params
    state_file = os.path.join(dest, RESTIC_STATE)
    try:
        with open(state_file) as f:
            state = json.load(f)
    except (IOError, OSError, ValueError):
        state = {}
    if state.get('repository') == p['restic_repository'] and state.get('snapshot'):
        result.update(restic_snapshot=state['snapshot'], restic_data_added=0)
        return
    result['changed'] = True
    if module.check_mode:
        return
    tags = ['pressluft', names['name'], 'id:%s' % p['id']]
    try:
        try:
            earlier = restic.snapshots(['pressluft', names['name']])
        except ResticError:
            restic.ensure_repository()  # a new repository, or the real error (unreachable, wrong password)
            earlier = []
        parent = earlier[-1]['id'] if earlier else None
        started = time.time()
        summary = restic.backup(dest, tags, parent)
    except ResticError as exc:
        module.fail_json(msg='%s. The local backup is kept at %s' % (exc, dest), **result)
    state = dict(repository=p['restic_repository'], snapshot=summary.get('snapshot_id'),
                 data_added=summary.get('data_added'), seconds=round(time.time() - started, 3))
    write_json(state_file, state)
    result.update(restic_snapshot=state['snapshot'], restic_data_added=state['data_added'])


def present(module, names, env, backup_dir, dest):
    p = module.params
    restic = _restic(module)
    result = dict(changed=False, id=p['id'], location=dest)
    manifest = read_manifest(dest)
    if manifest is None and restic is not None and not os.path.lexists(dest):
        # Only in restic (its local copy was removed): the backup exists, nothing to redo. A repository
        # that is missing or unreachable is dealt with after the local backup, which is made regardless.
        try:
            snaps = restic.snapshots(['pressluft', names['name'], 'id:%s' % p['id']])
        except ResticError:
            snaps = []
        if snaps:
            result.update(location=None, restic_snapshot=snaps[-1]['short_id'], restic_data_added=0)
            module.exit_json(**result)
    if manifest is None:
        if os.path.lexists(dest):
            module.fail_json(msg='%s exists but holds no complete backup: remove it or use another id' % dest,
                             **result)
        result['changed'] = True
        if module.check_mode:
            module.exit_json(**result)
        _ensure_dir(os.path.dirname(backup_dir))
        _ensure_dir(backup_dir)
        manifest = _create(module, names, env, dest, backup_dir)
    elif (manifest.get('site'), manifest.get('env')) != (names['site'], names['env']):
        module.fail_json(msg='%s holds a backup of %s_%s' % (dest, manifest.get('site'), manifest.get('env')),
                         **result)
    result['manifest'] = manifest
    if restic is not None:
        _push(module, restic, names, dest, result)
    module.exit_json(**result)


def absent(module, names, backup_dir, dest):
    p = module.params
    restic = _restic(module)
    result = dict(changed=False, id=p['id'], location=dest)
    tags = ['pressluft', names['name'], 'id:%s' % p['id']]
    if restic is not None:
        try:
            snaps = restic.snapshots(tags)
            if snaps:
                result['changed'] = True
                if not module.check_mode:
                    restic.forget([snap['id'] for snap in snaps])
        except ResticError as exc:
            module.fail_json(msg=str(exc), **result)
    if os.path.lexists(dest):
        result['changed'] = True
        if not module.check_mode:
            shutil.rmtree(dest)
    module.exit_json(**result)


def _check(p, names):
    check_run_as(p, names)
    if p['rebuild'] and p['state'] != 'restored':
        raise ValueError('rebuild applies to state=restored only')
    if not valid_id(p['id']):
        raise ValueError('invalid backup id %r: use 1-64 letters, digits, dots, underscores and dashes, '
                         'starting with a letter or digit' % (p['id'],))


def main():
    argument_spec = dict(
        id=dict(type='str', required=True),
        state=dict(type='str', choices=['present', 'restored', 'absent'], default='present'),
        scope=dict(type='str', choices=['full', 'db', 'files'], default='full'),
        include_core=dict(type='bool', default=False),
        rebuild=dict(type='bool', default=False),
        root=dict(type='path'),
        backup_dir=dict(type='path'),
        restic_repository=dict(type='str'),
        restic_password=dict(type='str', no_log=True),
        s3_access_key_id=dict(type='str', no_log=True),
        s3_secret_access_key=dict(type='str', no_log=True),
    )
    argument_spec.update(WP_CLI_ARGSPEC)
    module, names = env_module(argument_spec, check=_check)
    p = module.params
    env = Env(module, names)
    backup_dir = p['backup_dir'] or os.path.join(BACKUP_ROOT, names['name'])
    dest = os.path.join(backup_dir, p['id'])
    if p['state'] == 'absent':
        absent(module, names, backup_dir, dest)
    if p['state'] == 'restored':
        restore(module, names, env, backup_dir, dest, _restic(module))
    present(module, names, env, backup_dir, dest)


if __name__ == '__main__':
    main()

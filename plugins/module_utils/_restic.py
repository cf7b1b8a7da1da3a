# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""restic for the backup module: secrets reach restic through its environment, never its argv."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json


class ResticError(Exception):
    pass


class Restic(object):
    def __init__(self, module, repository, password, access_key_id=None, secret_access_key=None):
        self.module = module
        self.repository = repository
        self.bin = module.get_bin_path('restic', required=True)
        self.env = {'RESTIC_REPOSITORY': repository, 'RESTIC_PASSWORD': password}
        if access_key_id:
            self.env['AWS_ACCESS_KEY_ID'] = access_key_id
        if secret_access_key:
            self.env['AWS_SECRET_ACCESS_KEY'] = secret_access_key

    def run(self, args, cwd=None):
        rc, out, err = self.module.run_command([self.bin, *args], environ_update=self.env, cwd=cwd)
        if rc != 0:
            detail = ' '.join((err.strip() or out.strip()).split())
            raise ResticError('restic %s on %s failed (rc=%d): %s'
                              % (args[0], self.repository, rc, detail[-2000:]))
        return out

    def ensure_repository(self):
        """Open the repository, creating it when it does not exist yet; True when created."""
        try:
            self.run(['cat', 'config', '--no-lock'])
            return False
        except ResticError as missing:
            try:
                self.run(['init'])
            except ResticError as exc:
                raise ResticError('%s; then %s' % (missing, exc)) from None
            return True

    def snapshots(self, tags):
        """Snapshots carrying all of tags, oldest first."""
        out = self.run(['snapshots', '--json', '--no-lock', '--tag', ','.join(tags)])
        snaps = json.loads(out or '[]') or []
        return sorted(snaps, key=lambda s: s.get('time', ''))

    def backup(self, directory, tags, parent=None):
        """Back up directory's contents (as relative paths, so any earlier backup can be the parent)."""
        args = ['backup', '--json', '--ignore-ctime', '--ignore-inode']
        for tag in tags:
            args += ['--tag', tag]
        if parent:
            args += ['--parent', parent]
        out = self.run([*args, '.'], cwd=directory)
        for line in reversed(out.splitlines()):
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if isinstance(msg, dict) and msg.get('message_type') == 'summary':
                return msg
        raise ResticError('restic backup printed no summary')

    def restore(self, snapshot, target):
        self.run(['restore', snapshot, '--target', target])

    def forget(self, snapshot_ids):
        # By id: a tag filter without a --keep-* policy makes restic forget nothing.
        self.run(['forget', '--prune', *snapshot_ids])

#!/usr/bin/python
# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: env_tree
short_description: Secrets, Linux and Redis users, directory tree and wp-config.php of a Pressluft environment
description:
  - Checks the fencing token of the site first, so a stale job changes nothing.
  - With O(secrets=true) first keeps the environment's secrets file C(<secrets_dir>/<site>_<env>.json)
    like M(pressluft.wordpress.env_secrets) does (generated once, existing values never replaced) and
    returns the secrets, so use C(no_log) on the task. One module run instead of two.
  - Creates or converges, in one step, what the role C(site_env) used to do in a dozen tasks - the
    environment's group C(<site>_<env>), its user (unique UID, nologin shell, home the environment root,
    password locked, member of O(extra_groups)), the directory tree of docs/job-types.md with owners
    and modes, C(shared/wp-config.php) (root:group C(0640)) from O(wp_config) and the must-use plugin
    C(shared/pressluft.php) from O(mu_plugin) (the same owner and mode).
  - The environment root and C(releases/) belong to root (group the environment's, C(0750)), with a POSIX
    ACL entry that lets C(www-data) traverse them (C(--x)), so PHP, which runs as the environment user,
    cannot replace C(current), add or rename a release, or touch the release state file; other
    environments' users cannot enter. The file system must support POSIX ACLs (ext4, XFS, overlayfs on
    them).
  - With O(redis), then converges the environment's Redis ACL user C(<site>_<env>) like
    M(pressluft.wordpress.redis_acl_user) does - keys C(<site>_<env>:*) only, a logical database of its own,
    the password the secrets file holds - which needs O(secrets=true). This comes before C(wp-config.php).
  - With O(database), then converges the environment's MariaDB database C(<site>_<env>) (created with
    O(database.encoding) and O(database.collation)) and user C(<site>_<env>@localhost) - the password the
    secrets file holds, C(ALL) on its own database and nothing else - as root over MariaDB's socket, which
    needs O(secrets=true). The password never leaves the node.
  - Reports the PHP versions installed on the node, whether the kernel offers IPv6 and the files in the
    node's cache C(/var/cache/pressluft), which the rest of the environment needs, so no extra task has to
    look them up.
  - Removal is the role's job (C(state=absent) tasks); this module only creates.
version_added: "1.0.0"
author:
  - Pressluft developers (@pressluft)
extends_documentation_fragment:
  - pressluft.wordpress.attributes
  - pressluft.wordpress.env
  - pressluft.wordpress.fencing
  - pressluft.wordpress.secrets
options:
  extra_groups:
    description: Supplementary groups of the environment user (added, never removed).
    type: list
    elements: str
    default: [redis]
  wp_config:
    description:
      - Content of C(shared/wp-config.php); it holds passwords, so use C(no_log) on the task.
      - It may reference secrets as C(@@pressluft_secret:<key>@@) (C(db_password), C(redis_password),
        C(wordpress_admin_password), C(salts.<NAME>)), resolved on the node from the secrets file;
        that needs O(secrets=true). The controller then renders the file without knowing the secrets.
      - C(@@pressluft_redis_database@@) becomes the Redis user's database (needs O(redis)).
      - Omitted, the file is left alone.
    type: str
  mu_plugin:
    description:
      - Content of C(shared/pressluft.php), the Pressluft must-use plugin that C(wp-config.php) loads
        (login links, site info), root:group C(0640) like C(wp-config.php). Written here rather than by
        M(ansible.builtin.copy), which costs two more module runs per environment job.
      - Omitted, the file is left alone.
    type: str
  secrets:
    description:
      - Keep the secrets file (see the description) and return the secrets.
      - O(secrets_dir) and O(initial_secrets) apply only then.
    type: bool
    default: false
  redis:
    description:
      - How to reach Redis as its admin user to converge the environment's ACL user (see the description).
      - Omitted, no Redis user is managed.
    type: dict
    suboptions:
      socket:
        description: Redis Unix socket.
        type: path
        default: /run/redis/redis-server.sock
      admin_user:
        description: Redis ACL user allowed to manage users.
        type: str
        default: pressluft-admin
      admin_password_file:
        description: File holding the admin user's password (first line).
        type: path
        default: /etc/redis/pressluft-admin.pass
  database:
    description:
      - How to reach MariaDB as root to converge the environment's database and user (see the description).
      - Omitted, no database is managed.
    type: dict
    suboptions:
      socket:
        description: MariaDB's Unix socket (root connects over it without a password).
        type: path
        default: /run/mysqld/mysqld.sock
      encoding:
        description: Character set of a new database.
        type: str
        default: utf8mb4
      collation:
        description: Collation of a new database.
        type: str
        default: utf8mb4_unicode_ci
attributes:
  check_mode:
    support: full
  diff_mode:
    description: Returns details on what has changed in diff mode (never the content of wp-config.php).
    support: full
'''

EXAMPLES = r'''
- name: Create the user, directories and wp-config.php of shop/production
  pressluft.wordpress.env_tree:
    site: shop
    env: production
    secrets: true
    redis: {}
    database: {}
    wp_config: "{{ lookup('ansible.builtin.template', 'wp-config.php.j2') }}"
    fencing_token: "{{ pressluft_fencing_token | default(omit) }}"
  register: shop_tree
  no_log: true

- name: Create the tree, with a wp-config.php whose password is resolved on the node
  pressluft.wordpress.env_tree:
    site: blog
    secrets: true
    wp_config: "<?php define('DB_PASSWORD', '@@pressluft_secret:db_password@@');"
  no_log: true
'''

RETURN = r'''
user_created:
  description: Whether the environment user did not exist before the task (in check mode, would be created).
  returned: always
  type: bool
php_versions:
  description: PHP versions with a directory C(/etc/php/<major>.<minor>) on the node, sorted oldest first.
  returned: always
  type: list
  elements: str
  sample: ["8.2"]
inet6:
  description: Whether the kernel offers IPv6 (C(/proc/net/if_inet6) exists).
  returned: always
  type: bool
cache_files:
  description: Names of the files in the node's cache C(/var/cache/pressluft), sorted.
  returned: always
  type: list
  elements: str
  sample: ["wordpress-6.1.9.tar.gz"]
redis_acl:
  description: The ACL line the environment's Redis user has (its password as a SHA-256 hash).
  returned: when O(redis) is given
  type: str
  sample: "user shop_production on sanitize-payload #5e88... ~shop_production:* resetchannels +@all ..."
redis_database:
  description: The logical database of the environment's Redis user.
  returned: when O(redis) is given
  type: int
  sample: 3
secrets:
  description: The secrets (db_password, redis_password, wordpress_admin_password, salts) of the environment.
  returned: when O(secrets=true)
  type: dict
  sample: {"db_password": "...", "redis_password": "...", "salts": {"AUTH_KEY": "..."}}
changes:
  description: What changed (or would change in check mode).
  returned: always
  type: list
  elements: str
  sample: ["group shop_production", "user shop_production", "directory /var/www/sites/shop/production",
           "database shop_production", "database user shop_production"]
'''

import errno
import grp
import os
import pwd
import re
import socket
import struct

from ansible_collections.pressluft.wordpress.plugins.module_utils import _mariadb as mariadb
from ansible_collections.pressluft.wordpress.plugins.module_utils._atomic import file_differs, write_file
from ansible_collections.pressluft.wordpress.plugins.module_utils._env import env_module
from ansible_collections.pressluft.wordpress.plugins.module_utils._redis_acl import (
    ADMIN_ARGSPEC,
    AdminPasswordError,
    RedisError,
    admin_connection,
    ensure_user,
)
from ansible_collections.pressluft.wordpress.plugins.module_utils._secrets import (
    REF_RE,
    SECRETS_ARGSPEC,
    SecretsError,
    check_initial,
    ensure,
    resolve,
)

NOLOGIN = '/usr/sbin/nologin'
GROUP_RE = re.compile(r'^[a-z_][a-z0-9_-]{0,31}$')
PHP_DIR_RE = re.compile(r'^[0-9]+\.[0-9]+$')
CACHE_DIR = '/var/cache/pressluft'
WEB_USER = 'www-data'
REDIS_DATABASE_REF = '@@pressluft_redis_database@@'
# The access ACL as the kernel stores it (linux/posix_acl_xattr.h): version 2, then (tag, perm, id) entries
# ordered by tag and id. Written whole, compared whole: no acl package needed on the node.
ACL_XATTR = 'system.posix_acl_access'
ACL_USER_OBJ = 0x01
ACL_USER = 0x02
ACL_GROUP_OBJ = 0x04
ACL_MASK = 0x10
ACL_OTHER = 0x20
ACL_NO_ID = 0xFFFFFFFF


def tree(names):
    """(path, owner, group, mode, users that may traverse) of every directory, parents first.

    docs/job-types.md (site_create, 3.): PHP runs as the environment user, so the root and releases/ are
    root's; nginx traverses them through an ACL entry, other environments' users are kept out.
    """
    user, group = names['user'], names['group']
    return [
        (CACHE_DIR, 'root', 'root', 0o755, ()),
        (os.path.dirname(names['root']), 'root', 'root', 0o711, ()),
        (names['root'], 'root', group, 0o750, (WEB_USER,)),
        (names['releases'], 'root', group, 0o750, (WEB_USER,)),
        (names['shared'], 'root', group, 0o751, ()),
        (names['uploads'], user, WEB_USER, 0o2750, ()),
        (names['tmp'], user, group, 0o700, ()),
        (names['logs'], user, group, 0o750, ()),
    ]


def acl_blob(mode, traverse_uids):
    """The access ACL of mode plus --x for each uid; the mask is the group bits (they include x)."""
    entries = [(ACL_USER_OBJ, (mode >> 6) & 7, ACL_NO_ID)]
    entries += [(ACL_USER, 1, uid) for uid in sorted(traverse_uids)]
    entries += [(ACL_GROUP_OBJ, (mode >> 3) & 7, ACL_NO_ID), (ACL_MASK, (mode >> 3) & 7, ACL_NO_ID),
                (ACL_OTHER, mode & 7, ACL_NO_ID)]
    return struct.pack('<I', 2) + b''.join(struct.pack('<HHI', *e) for e in entries)


def read_acl(path):
    try:
        return os.getxattr(path, ACL_XATTR, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.EOPNOTSUPP):
            return None
        raise


class Tree(object):
    def __init__(self, module, names):
        self.module = module
        self.names = names
        self.check = module.check_mode
        self.changes = []

    def run(self, argv):
        self.module.run_command(argv, check_rc=True)

    def account(self, extra_groups):
        """Create the user with its group (one useradd -U), or converge a user Pressluft created.

        check_account() has refused an account Pressluft did not create before anything was written.
        """
        n = self.names
        try:
            pw = pwd.getpwnam(n['user'])
        except KeyError:
            self.changes += ['group %s' % n['group'], 'user %s' % n['user']]
            if not self.check:
                self.run(['useradd', '-U', '-G', ','.join(extra_groups), '-d', n['root'], '-M',
                          '-s', NOLOGIN, '-p', '!', '-c', marker(n), n['user']])
            return True
        try:
            gid = grp.getgrnam(n['group']).gr_gid
        except KeyError:  # our user lost its group (deleted by hand): recreate it
            self.changes.append('group %s' % n['group'])
            gid = None
            if not self.check:
                self.run(['groupadd', n['group']])
                gid = grp.getgrnam(n['group']).gr_gid
        fix = []
        if gid is not None and pw.pw_gid != gid:
            fix += ['-g', n['group']]
        missing = [g for g in extra_groups if n['user'] not in grp.getgrnam(g).gr_mem]
        if missing:
            fix += ['-a', '-G', ','.join(missing)]
        for flag, want, have in (('-d', n['root'], pw.pw_dir), ('-s', NOLOGIN, pw.pw_shell)):
            if want != have:
                fix += [flag, want]
        if self._password(n['user']) not in ('!', None):
            fix += ['-p', '!']
        if fix:
            self.changes.append('user %s (%s)' % (n['user'], ' '.join(f for f in fix if f.startswith('-'))))
            if not self.check:
                self.run(['usermod', *fix, n['user']])
        return False

    @staticmethod
    def _password(user):
        try:
            with open('/etc/shadow') as f:
                for line in f:
                    fields = line.split(':')
                    if fields[0] == user and len(fields) > 1:
                        return fields[1]
        except IOError:
            pass
        return None

    def _ids(self, owner, group):
        try:
            return pwd.getpwnam(owner).pw_uid, grp.getgrnam(group).gr_gid
        except KeyError:
            if self.check:
                return None, None  # the user or group would be created
            raise

    def directory(self, path, owner, group, mode, traverse):
        uid, gid = self._ids(owner, group)
        acl = acl_blob(mode & 0o777, [pwd.getpwnam(u).pw_uid for u in traverse]) if traverse else None
        try:
            st = os.lstat(path)
        except OSError:
            st = None
        if st is not None and not os.path.isdir(path):
            self.module.fail_json(msg='%s exists and is not a directory' % path, changes=self.changes)
        if st is not None and os.path.islink(path):
            self.module.fail_json(msg='%s is a symlink, not a directory' % path, changes=self.changes)
        if st is None:
            self.changes.append('directory %s' % path)
            if not self.check:
                parent = os.path.dirname(path)
                if not os.path.isdir(parent):
                    os.makedirs(parent, 0o755)  # /var/www/sites on a fresh node, like mkdir -p
                os.mkdir(path, 0o700)  # tightened first, opened up below once owned right
                self._own(path, uid, gid, mode, acl)
            return
        if (st.st_uid, st.st_gid) != (uid, gid) or (st.st_mode & 0o7777) != mode:
            self.changes.append('directory %s (owner/mode)' % path)
        elif acl is not None and read_acl(path) != acl:
            self.changes.append('directory %s (ACL)' % path)
        else:
            return
        if not self.check:
            self._own(path, uid, gid, mode, acl)

    def _own(self, path, uid, gid, mode, acl):
        # chmod before the ACL: chmod rewrites the ACL's mask; the ACL written after it carries the mode.
        os.chown(path, uid, gid)
        os.chmod(path, mode)
        if acl is None:
            return
        try:
            os.setxattr(path, ACL_XATTR, acl, follow_symlinks=False)
        except OSError as exc:
            if exc.errno != errno.EOPNOTSUPP:
                raise
            self.module.fail_json(msg='%s: the file system does not support POSIX ACLs, which keep the '
                                      'environment root root-owned yet open to nginx' % path,
                                  changes=self.changes)

    def file(self, path, content, owner, group, mode):
        data = content.encode('utf-8')
        uid, gid = self._ids(owner, group)
        if file_differs(path, data, uid, gid, mode):
            self.changes.append('file %s' % path)
            if not self.check:
                write_file(path, data, uid, gid, mode)


def marker(names):
    """The GECOS comment that marks the accounts Pressluft created (site_delete checks it too)."""
    return 'Pressluft %s/%s' % (names['site'], names['env'])


def account_refusal(names, pw, gr):
    """Why the existing account (pw, gr: pwd/grp entries or None) must not become the environment's.

    An account Pressluft did not create (an admin's john_doe for site john, env doe) is never adopted:
    the environment would run PHP as that person, and site_delete would later remove them.
    """
    user = names['user']
    if pw is not None and pw.pw_gecos != marker(names):
        return ('the Linux account %s exists and Pressluft did not create it (its comment is %r, not %r): '
                'nothing was changed; choose another site or environment name, or remove or rename the '
                'account' % (user, pw.pw_gecos, marker(names)))
    if pw is None and gr is not None:
        return ('the Linux group %s exists without a user %s, so Pressluft did not create it (it creates '
                'both in one step): nothing was changed; choose another site or environment name, or '
                'remove or rename the group' % (names['group'], user))
    return None


def check_account(names):
    try:
        pw = pwd.getpwnam(names['user'])
    except KeyError:
        pw = None
    try:
        gr = grp.getgrnam(names['group'])
    except KeyError:
        gr = None
    return account_refusal(names, pw, gr)


def php_versions():
    try:
        entries = os.listdir('/etc/php')
    except OSError:
        return []
    found = [e for e in entries if PHP_DIR_RE.match(e) and os.path.isdir(os.path.join('/etc/php', e))]
    return sorted(found, key=lambda v: tuple(int(x) for x in v.split('.')))


def cache_files():
    try:
        return sorted(e for e in os.listdir(CACHE_DIR) if os.path.isfile(os.path.join(CACHE_DIR, e)))
    except OSError:
        return []


def redis_user(module, redis, name, pattern, secrets, changes):
    try:
        conn = admin_connection(redis['socket'], redis['admin_user'], redis['admin_password_file'])
        changed, acl, database = ensure_user(conn, name, secrets['redis_password'], pattern,
                                             module.check_mode)
    except AdminPasswordError as exc:
        module.fail_json(msg=str(exc), changes=changes)
    except (RedisError, socket.error) as exc:
        module.fail_json(msg='Redis (%s): %s' % (redis['socket'], exc), changes=changes)
    if changed:
        changes.append('redis ACL user %s' % name)
    return acl, database


def _check(p, names):
    for g in p['extra_groups']:
        if not GROUP_RE.match(g):
            raise ValueError('invalid group name %r' % g)
        try:
            grp.getgrnam(g)
        except KeyError:
            raise ValueError('group %s does not exist: provision the node first (node_provision.yml)'
                             % g) from None
    check_initial(p['initial_secrets'])  # a SecretsError is a ValueError
    if p['wp_config'] is not None and not p['secrets'] and REF_RE.search(p['wp_config']):
        raise ValueError('wp_config references secrets (@@pressluft_secret:...@@): set secrets=true')
    if p['database'] is not None and not p['secrets']:
        raise ValueError('database needs secrets=true (the password is the secrets file\'s)')
    if p['redis'] is not None and not p['secrets']:
        raise ValueError('redis needs secrets=true: the ACL user gets the secrets file\'s redis_password')
    refusal = check_account(names)  # before the fence: an account Pressluft did not create changes nothing
    if refusal:
        raise ValueError(refusal)


def main():
    argument_spec = dict(
        extra_groups=dict(type='list', elements='str', default=['redis']),
        wp_config=dict(type='str', no_log=True),
        mu_plugin=dict(type='str'),
        secrets=dict(type='bool', default=False),
        redis=dict(type='dict', options=dict(ADMIN_ARGSPEC)),
        database=dict(type='dict', options=dict(mariadb.ARGSPEC)),
    )
    argument_spec.update(SECRETS_ARGSPEC)
    module, names = env_module(argument_spec, check=_check)
    p = module.params

    t = Tree(module, names)
    secrets = None
    if p['secrets']:
        path = os.path.join(p['secrets_dir'], names['name'] + '.json')
        try:
            changed, secrets = ensure(path, p['initial_secrets'], module.check_mode)
        except SecretsError as exc:
            module.fail_json(msg=str(exc), path=path)
        if changed:
            t.changes.append('secrets %s' % path)
    created = t.account(p['extra_groups'])
    for path, owner, group, mode, traverse in tree(names):
        t.directory(path, owner, group, mode, traverse)
    acl = database = None
    if p['redis'] is not None:  # first: wp-config.php names the database the user gets
        acl, database = redis_user(module, p['redis'], names['redis_user'], names['redis_prefix'] + '*',
                                   secrets, t.changes)
    if p['database'] is not None:
        try:
            t.changes += mariadb.ensure(module, p['database'], names['db_name'], names['db_user'],
                                        secrets['db_password'])
        except mariadb.DatabaseError as exc:
            module.fail_json(msg=str(exc), changes=t.changes)
    if p['wp_config'] is not None:
        try:
            content = resolve(p['wp_config'], secrets) if secrets is not None else p['wp_config']
        except SecretsError as exc:
            module.fail_json(msg=str(exc), changes=t.changes)
        if REDIS_DATABASE_REF in content:
            if database is None:
                module.fail_json(msg='wp_config names %s: give redis' % REDIS_DATABASE_REF, changes=t.changes)
            content = content.replace(REDIS_DATABASE_REF, str(database))
        t.file(names['wp_config'], content, 'root', names['group'], 0o640)
    if p['mu_plugin'] is not None:
        t.file(os.path.join(names['shared'], 'pressluft.php'), p['mu_plugin'], 'root', names['group'], 0o640)
    result = dict(changed=bool(t.changes), changes=t.changes, user_created=created,
                  php_versions=php_versions(), inet6=os.path.exists('/proc/net/if_inet6'),
                  cache_files=cache_files())
    if secrets is not None:
        result['secrets'] = secrets
    if acl is not None:
        result['redis_acl'] = acl
        result['redis_database'] = database
    if module._diff:
        result['diff'] = dict(before='', after=''.join(c + '\n' for c in t.changes))
    module.exit_json(**result)


if __name__ == '__main__':
    main()

#!/usr/bin/python
# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: secrets_rotate
short_description: Rotate the secrets of a Pressluft environment without a failed request
description:
  - Checks the fencing token of the site first, so a stale job changes nothing.
  - Rotates the environment's MariaDB password, Redis ACL password and WordPress salts (and, with
    O(admin_password=true), the WordPress administrator's password), in an order that keeps every
    request working - for a while both the old and the new DB and Redis passwords are accepted.
  - Phases, each safe to repeat - 1. new values are generated and kept as C(rotation) in the secrets file
    C(<secrets_dir>/<site>_<env>.json), so a run that dies half-way is completed with the same values by
    the next run; 2. the DB user accepts the old or the new password (MariaDB's C(IDENTIFIED VIA ... OR
    ...)), the Redis ACL user gets the new password beside the old one; 3. C(shared/wp-config.php) is
    rewritten in one rename with the new values (its mtime moves forward, so opcache recompiles it at its
    next timestamp check); 4. the module waits until the file is O(drain_seconds) old, so requests that
    read the old file have connected; 5. the admin password through WP-CLI (its standard input, never its
    command line); 6. the DB and Redis users accept only the new password; 7. the new values replace the
    old ones in the secrets file.
  - Returns the new DB (and admin) password, which the control plane stores, so use C(no_log) on the task.
version_added: "1.0.0"
author:
  - Pressluft developers (@pressluft)
extends_documentation_fragment:
  - pressluft.wordpress.env
  - pressluft.wordpress.fencing
  - pressluft.wordpress.wp_cli
  - pressluft.wordpress.attributes
options:
  admin_password:
    description: Also rotate the password of the WordPress administrator O(admin_user).
    type: bool
    default: false
  admin_user:
    description: Login of the WordPress administrator whose password O(admin_password=true) rotates.
    type: str
    default: admin
  drain_seconds:
    description:
      - How old the new C(wp-config.php) must be before the old DB and Redis passwords stop working.
      - Covers opcache's timestamp check (C(opcache.revalidate_freq), 2 s on Pressluft nodes) and requests
        that read the old file just before the switch and have not connected yet.
    type: int
    default: 10
  mysql_socket:
    description: MariaDB socket; root logs in through it without a password.
    type: path
    default: /run/mysqld/mysqld.sock
  redis:
    description: How to reach Redis as its admin user, to change the environment's ACL user.
    type: dict
    default: {}
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
  secrets_dir:
    description: Directory of the secrets files.
    type: path
    default: /etc/pressluft/secrets
attributes:
  check_mode:
    description: Reports that the secrets would be rotated; changes nothing.
    support: full
  diff_mode:
    support: none
'''

EXAMPLES = r'''
- name: Rotate the secrets of shop/production, the admin password too
  pressluft.wordpress.secrets_rotate:
    site: shop
    env: production
    admin_password: true
    fencing_token: "{{ pressluft_fencing_token | default(omit) }}"
  register: rotated
  no_log: true
'''

RETURN = r'''
rotated:
  description: The secrets that were rotated.
  returned: success
  type: list
  elements: str
  sample: ["db_password", "redis_password", "salts", "wordpress_admin_password"]
phases:
  description: The phases this run carried out (a run that completes an interrupted one repeats them).
  returned: success
  type: list
  elements: str
  sample: ["generate", "accept both", "wp-config.php", "drain", "admin password", "accept new only", "commit"]
secrets:
  description:
    - The new DB password (C(db_password)) and, when rotated, admin password (C(wordpress_admin_password)).
  returned: success, not in check mode
  type: dict
'''

import hashlib
import json
import os
import socket
import time

from ansible_collections.pressluft.wordpress.plugins.module_utils._atomic import write_file
from ansible_collections.pressluft.wordpress.plugins.module_utils._env import (
    WP_CLI_ARGSPEC,
    check_run_as,
    env_module,
)
from ansible_collections.pressluft.wordpress.plugins.module_utils._redis_acl import (
    ADMIN_ARGSPEC,
    RedisError,
    admin_connection,
    ensure_user,
)
from ansible_collections.pressluft.wordpress.plugins.module_utils._secrets import (
    SALT_ALPHABET,
    SALT_KEYS,
    SecretsError,
    _token,
)
from ansible_collections.pressluft.wordpress.plugins.module_utils._wp_cli import WpCli, WpCliError

ROTATION = 'rotation'
UNSAFE = '\'"\\\n\r\0'


def new_values(admin_password):
    values = {'db_password': _token(32), 'redis_password': _token(32),
              'salts': dict((k, _token(64, SALT_ALPHABET)) for k in SALT_KEYS)}
    if admin_password:
        values['wordpress_admin_password'] = _token(32)
    return values


def pairs(current, rotation):
    """(key, old, new) of every rotated value, salts as salts.<NAME>."""
    out = []
    for key in ('db_password', 'redis_password', 'wordpress_admin_password'):
        if key in rotation:
            out.append((key, current.get(key), rotation[key]))
    for key in sorted(rotation.get('salts', {})):
        out.append(('salts.' + key, current.get('salts', {}).get(key), rotation['salts'][key]))
    return out


def check_values(items):
    for key, old, new in items:
        for value in (old, new):
            if not isinstance(value, str) or len(value) < 16 or any(c in value for c in UNSAFE):
                raise SecretsError('the secrets file holds no usable %s (at least 16 characters, no '
                                   'quotes, backslashes or line breaks): converge the environment with '
                                   'site_create first' % key)


def load(path):
    try:
        with open(path) as f:
            data = json.load(f)
    except (IOError, OSError) as exc:
        raise SecretsError('cannot read %s (%s): create the environment first (site_create)'
                           % (path, exc)) from None
    except ValueError:
        raise SecretsError('%s is not valid JSON: fix or remove it by hand' % path) from None
    if not isinstance(data, dict):
        raise SecretsError('%s does not hold a JSON object' % path)
    return data


def save(path, data):
    text = json.dumps(data, indent=2, sort_keys=True) + '\n'
    write_file(path, text.encode('utf-8'), 0, 0, 0o600)


def rewrite_config(text, items):
    """wp-config.php with each old value's PHP literal replaced by the new one (already new: kept)."""
    for key, old, new in items:
        if key == 'wordpress_admin_password':
            continue  # not in wp-config.php
        if "'%s'" % old in text:
            text = text.replace("'%s'" % old, "'%s'" % new)
        elif "'%s'" % new not in text:
            raise SecretsError('wp-config.php holds neither the current nor the new %s: converge the '
                               'environment with site_create first' % key)
    return text


class Rotation(object):
    def __init__(self, module, names):
        self.module = module
        self.names = names
        self.phases = []
        self.secrets = []  # every old and new value: never in a message, whatever a tool echoes

    def fail(self, msg):
        for value in self.secrets:
            msg = msg.replace(value, '********')
        self.module.fail_json(msg=msg, phases=self.phases)

    def sql(self, statement):
        p = self.module.params
        argv = ['mysql', '--protocol=socket', '--socket=%s' % p['mysql_socket'], '--batch',
                '--skip-column-names']
        rc, out, err = self.module.run_command(argv, data=statement, binary_data=False)
        if rc != 0:
            self.fail('MariaDB refused the password change of %s (rc=%d): %s'
                      % (self.names['db_user'], rc, err.strip()))
        return out

    def db_accept(self, passwords):
        """The DB user accepts each of passwords (one authentication method per password)."""
        methods = ' OR '.join("mysql_native_password USING PASSWORD('%s')" % pw for pw in passwords)
        self.sql("ALTER USER '%s'@'localhost' IDENTIFIED VIA %s;" % (self.names['db_user'], methods))

    def redis(self):
        r = self.module.params['redis']
        try:
            return admin_connection(r['socket'], r['admin_user'], r['admin_password_file'])
        except (RedisError, socket.error) as exc:
            self.fail('Redis (%s): %s' % (r['socket'], exc))

    def redis_add(self, password):
        conn = self.redis()
        digest = '#' + hashlib.sha256(password.encode('utf-8')).hexdigest()
        try:
            conn.call('ACL', 'SETUSER', self.names['redis_user'], digest)
            conn.call('ACL', 'SAVE')
        except RedisError as exc:
            self.fail('Redis: %s' % exc)

    def redis_only(self, password):
        try:
            ensure_user(self.redis(), self.names['redis_user'], password, self.names['redis_prefix'] + '*',
                        False)
        except RedisError as exc:
            self.fail('Redis: %s' % exc)

    def config(self, items):
        path = self.names['wp_config']
        st = os.stat(path)
        with open(path) as f:
            text = f.read()
        new = rewrite_config(text, items)
        if new != text:
            write_file(path, new.encode('utf-8'), st.st_uid, st.st_gid, st.st_mode & 0o7777)
            # opcache compares mtimes in whole seconds: make sure the new file's differs from the old one's.
            stamp = max(time.time(), st.st_mtime + 1)
            os.utime(path, (stamp, stamp))
        return os.stat(path).st_mtime

    def admin(self, user, password):
        try:
            wp = WpCli(self.module, self.module.params['run_as'], self.names['current'])
            args = ['user', 'update', user, '--prompt=user_pass', '--skip-email']
            rc, out, err = wp.run(args, data=password, check=False)
        except WpCliError as exc:
            self.fail(str(exc))
        # WP-CLI warns about an unknown login and exits 0 having updated nobody: only its success line counts.
        if rc != 0 or 'Success:' not in out:
            self.fail('wp user update %s failed (rc=%d): %s' % (user, rc, (err or out).strip()))


def _check(p, names):
    check_run_as(p, names)
    if not 0 <= p['drain_seconds'] <= 600:
        raise ValueError('drain_seconds must be between 0 and 600')
    if not p['admin_user'] or any(c.isspace() or c in UNSAFE for c in p['admin_user']) \
            or p['admin_user'].startswith('-'):
        raise ValueError('admin_user %r is not a WordPress login' % (p['admin_user'],))


def main():
    argument_spec = dict(
        admin_password=dict(type='bool', default=False, no_log=False),
        admin_user=dict(type='str', default='admin'),
        drain_seconds=dict(type='int', default=10),
        mysql_socket=dict(type='path', default='/run/mysqld/mysqld.sock'),
        redis=dict(type='dict', default={}, options=dict(ADMIN_ARGSPEC)),
        secrets_dir=dict(type='path', default='/etc/pressluft/secrets'),
    )
    argument_spec.update(WP_CLI_ARGSPEC)
    module, names = env_module(argument_spec, check=_check)
    p = module.params

    path = os.path.join(p['secrets_dir'], names['name'] + '.json')
    run = Rotation(module, names)
    try:
        data = load(path)
        rotation = data.get(ROTATION)
        if not isinstance(rotation, dict):
            rotation = None
        if module.check_mode:
            wanted = set(rotation or new_values(p['admin_password']))
            if p['admin_password']:
                wanted.add('wordpress_admin_password')
            module.exit_json(changed=True, rotated=sorted(wanted), phases=[])
        # 1. The new values, kept before anything uses them: an interrupted run is completed with them.
        if rotation is None:
            rotation = data[ROTATION] = new_values(p['admin_password'])
            save(path, data)
            run.phases.append('generate')
        elif p['admin_password'] and 'wordpress_admin_password' not in rotation:
            rotation['wordpress_admin_password'] = _token(32)
            save(path, data)
        items = pairs(data, rotation)
        check_values(items)
        run.secrets = [v for _key, old, new in items for v in (old, new)]
    except SecretsError as exc:
        module.fail_json(msg=str(exc), phases=run.phases)
    old_db, new_db = data['db_password'], rotation['db_password']
    # 2. Both passwords work, so requests with the old or the new wp-config.php connect.
    run.db_accept([old_db, new_db])
    run.redis_add(rotation['redis_password'])
    run.phases.append('accept both')
    # 3. wp-config.php in one rename.
    try:
        mtime = run.config(items)
    except SecretsError as exc:
        module.fail_json(msg=str(exc), phases=run.phases)
    run.phases.append('wp-config.php')
    # 4. Until opcache rechecked the file and requests that read the old one have connected.
    wait = mtime + p['drain_seconds'] - time.time()
    if wait > 0:
        time.sleep(wait)
    run.phases.append('drain')
    # 5. The admin password (WordPress reads the new wp-config.php; the DB accepts its password).
    if 'wordpress_admin_password' in rotation:
        run.admin(p['admin_user'], rotation['wordpress_admin_password'])
        run.phases.append('admin password')
    # 6. Only the new passwords work.
    run.db_accept([new_db])
    run.redis_only(rotation['redis_password'])
    run.phases.append('accept new only')
    # 7. The new values become the current ones.
    for key in ('db_password', 'redis_password', 'wordpress_admin_password'):
        if key in rotation:
            data[key] = rotation[key]
    data['salts'] = dict(data.get('salts') or {}, **rotation.get('salts', {}))
    del data[ROTATION]
    save(path, data)
    run.phases.append('commit')
    secrets = dict((k, data[k]) for k in ('db_password', 'wordpress_admin_password') if k in rotation)
    module.exit_json(changed=True, rotated=sorted(k for k in rotation), phases=run.phases, secrets=secrets)


if __name__ == '__main__':
    main()

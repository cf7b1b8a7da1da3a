#!/usr/bin/python
# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: env_auth
short_description: Switch HTTP basic auth of a Pressluft environment on or off
description:
  - Checks the fencing token of the site first, so a stale job changes nothing.
  - V(present) writes C(/etc/nginx/pressluft-auth/<site>_<env>.htpasswd) (root, group O(nginx_group),
    C(0640)) with O(user) and the SHA-512 crypt hash of O(password) (C(openssl passwd -6), the password
    on stdin, never on a command line), and the switch C(/etc/nginx/pressluft-auth/<site>_<env>.conf) that
    the environment's server block includes (C(auth_basic) and C(auth_basic_user_file), fixed text).
  - The server block exempts C(/.well-known/acme-challenge/), so certificates keep renewing.
  - The node's health checks (M(pressluft.wordpress.site_probe)) log in as C(pressluft-probe) with a
    password generated here and kept only in the root-only C(0600) file C(<site>_<env>.probe).
  - Idempotent - an existing hash that O(password) reproduces (same salt) is kept.
  - V(present) is refused for the environment C(production). V(absent) removes the three files.
  - Does not reload nginx; the playbook does (M(pressluft.wordpress.reload_marker)).
version_added: "1.0.0"
author:
  - Pressluft developers (@pressluft)
extends_documentation_fragment:
  - pressluft.wordpress.attributes
  - pressluft.wordpress.env
  - pressluft.wordpress.fencing
options:
  state:
    description: V(present) turns basic auth on (or changes its user and password), V(absent) off.
    type: str
    choices: [present, absent]
    default: present
  user:
    description:
      - The user name, 1-64 letters, digits, C(.), C(_) and C(-), starting with a letter or digit; not
        C(pressluft-probe). Required with O(state=present).
    type: str
  password:
    description: The password, 8-128 printable characters. Required with O(state=present).
    type: str
  nginx_group:
    description: The group nginx's workers run as; it may read the htpasswd file.
    type: str
    default: www-data
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The diff shows the user and whether auth is on, never a hash or password.
'''

EXAMPLES = r'''
- name: Protect shop/staging with a password
  pressluft.wordpress.env_auth:
    site: shop
    env: staging
    user: preview
    password: "{{ staging_password }}"

- name: Open shop/staging again
  pressluft.wordpress.env_auth:
    site: shop
    env: staging
    state: absent
'''

RETURN = r'''
enabled:
  description: Whether basic auth is on after the run.
  returned: always
  type: bool
  sample: true
user:
  description: The user that may log in (V(null) when off).
  returned: always
  type: str
  sample: preview
paths:
  description: The switch, the htpasswd file and the health checks' password file.
  returned: always
  type: list
  elements: str
  sample:
    - /etc/nginx/pressluft-auth/shop_staging.conf
    - /etc/nginx/pressluft-auth/shop_staging.htpasswd
    - /etc/nginx/pressluft-auth/shop_staging.probe
'''

import grp
import os
import secrets

from ansible_collections.pressluft.wordpress.plugins.module_utils import _env_auth as ea
from ansible_collections.pressluft.wordpress.plugins.module_utils._atomic import file_differs, write_file
from ansible_collections.pressluft.wordpress.plugins.module_utils._env import env_module
from ansible_collections.pressluft.wordpress.plugins.module_utils._names import NGINX_AUTH_DIR


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except (OSError, IOError):
        return ''


def _check(p, names):
    if p['state'] == 'present':
        if names['env'] == 'production':
            raise ValueError('basic auth is for non-production environments: production stays public')
        if p['user'] is None or p['password'] is None:
            raise ValueError('state=present needs user and password')
        ea.check_user(p['user'])
        ea.check_password(p['password'])


def _hash(module, password, salt=None):
    argv = [module.get_bin_path('openssl', required=True), 'passwd', '-6']
    if salt is not None:
        argv += ['-salt', salt]
    rc, out, err = module.run_command([*argv, '-stdin'], data=password)
    if rc != 0 or not out.strip().startswith('$6$'):
        module.fail_json(msg='openssl passwd failed (rc %d): %s' % (rc, err.strip()[-300:]))
    return out.strip()


def _keep_or_hash(module, old_hash, password):
    """old_hash when password reproduces it, else a new hash (new salt)."""
    salt = ea.salt_of(old_hash or '')
    if salt is not None and _hash(module, password, salt) == old_hash:
        return old_hash
    return _hash(module, password)


def main():
    module, names = env_module(dict(
        state=dict(type='str', choices=['present', 'absent'], default='present'),
        user=dict(type='str'),
        password=dict(type='str', no_log=True),
        nginx_group=dict(type='str', default='www-data'),
    ), check=_check)
    p = module.params
    conf, htpasswd, probe = names['auth_conf'], names['auth_htpasswd'], names['auth_probe']
    old = ea.parse_htpasswd(_read(htpasswd))
    old_user = next((u for u in old if u != ea.PROBE_USER), None) if os.path.exists(conf) else None

    if p['state'] == 'absent':
        changed = any(os.path.lexists(x) for x in (conf, htpasswd, probe))
        if changed and not module.check_mode:
            for path in (conf, htpasswd, probe):  # the switch first: nginx never lacks a file it includes
                if os.path.lexists(path):
                    os.unlink(path)
        user = None
    else:
        if 'include %s[f];' % conf[:-1] not in _read(names['nginx_conf']):
            module.fail_json(msg='the server block %s does not include the basic auth switch %s: converge '
                             'the environment first (pressluft site create, playbook site_create.yml)'
                             % (names['nginx_conf'], conf))
        try:
            gid = grp.getgrnam(p['nginx_group']).gr_gid
        except KeyError:
            module.fail_json(msg='group %r does not exist on the node' % p['nginx_group'])
        probe_password = _read(probe).strip() or secrets.token_urlsafe(24)
        entries = [
            (p['user'], _keep_or_hash(module, old.get(p['user']), p['password'])),
            (ea.PROBE_USER, _keep_or_hash(module, old.get(ea.PROBE_USER), probe_password)),
        ]
        want = [
            (probe, (probe_password + '\n').encode('utf-8'), 0, 0o600),
            (htpasswd, ea.render_htpasswd(entries).encode('utf-8'), gid, 0o640),
            (conf, ea.render_conf(names).encode('utf-8'), 0, 0o644),  # last: the files it names exist
        ]
        changed = any(file_differs(path, data, 0, g, mode) for path, data, g, mode in want)
        if changed and not module.check_mode:
            if not os.path.isdir(NGINX_AUTH_DIR):
                os.makedirs(NGINX_AUTH_DIR, 0o755)
            os.chown(NGINX_AUTH_DIR, 0, 0)
            os.chmod(NGINX_AUTH_DIR, 0o755)
            for path, data, g, mode in want:
                if file_differs(path, data, 0, g, mode):
                    write_file(path, data, 0, g, mode)
        user = p['user']
    result = dict(changed=changed, enabled=user is not None, user=user, paths=[conf, htpasswd, probe])
    if module._diff and changed:
        result['diff'] = dict(before='basic auth: %s\n' % ('user ' + old_user if old_user else 'off'),
                              after='basic auth: %s\n' % ('user ' + user if user else 'off'),
                              before_header=conf, after_header=conf)
    module.exit_json(**result)


if __name__ == '__main__':
    main()

# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The secrets file of an environment (/etc/pressluft/secrets/<site>_<env>.json): env_secrets and env_tree."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import secrets as pysecrets
import string

from ansible_collections.pressluft.wordpress.plugins.module_utils._atomic import write_file

SECRETS_ARGSPEC = dict(
    secrets_dir=dict(type='path', default='/etc/pressluft/secrets'),
    # Not no_log: Ansible would then mask every returned secret equal to an input one (the DB password
    # the controller needs would read VALUE_SPECIFIED_IN_NO_LOG_PARAMETER). The task is no_log instead.
    initial_secrets=dict(type='dict', default={}, no_log=False),
)
# The names of the control plane's secret store (pressluft_lib services ENV_SECRETS) where they overlap.
PASSWORD_KEYS = ('db_password', 'redis_password', 'wordpress_admin_password')
# Keys of secrets files (and references) written before the names were aligned: read, then renamed.
OLD_KEYS = {'wp_admin_password': 'wordpress_admin_password'}
SALT_KEYS = ('AUTH_KEY', 'SECURE_AUTH_KEY', 'LOGGED_IN_KEY', 'NONCE_KEY',
             'AUTH_SALT', 'SECURE_AUTH_SALT', 'LOGGED_IN_SALT', 'NONCE_SALT')
# No quotes or backslashes: the values go into PHP string literals in wp-config.php.
SALT_ALPHABET = string.ascii_letters + string.digits + '!#%&()*+,-.:;<=>?@[]^_{|}~'
# A reference to a secret in a file rendered on the controller, resolved on the node, e.g.
# @@pressluft_secret:db_password@@ or @@pressluft_secret:salts.AUTH_KEY@@: the controller needs no secret.
REF_RE = re.compile(r'@@pressluft_secret:([A-Za-z_.]+)@@')


class SecretsError(ValueError):
    """The secrets file or the input cannot be used; nothing was changed (a ValueError: bad input)."""


def _token(length, alphabet=string.ascii_letters + string.digits):
    return ''.join(pysecrets.choice(alphabet) for dummy in range(length))


def check_initial(initial):
    """Refuse unknown keys and values that would break wp-config.php."""
    unknown = sorted(set(initial) - set(PASSWORD_KEYS))
    if unknown:
        raise SecretsError('initial_secrets accepts only %s, not %s'
                           % (', '.join(PASSWORD_KEYS), ', '.join(unknown)))
    for key, value in initial.items():
        if not isinstance(value, str) or len(value) < 16 or any(c in value for c in '\'"\\\n'):
            raise SecretsError('initial_secrets.%s must be a string of at least 16 characters '
                               'without quotes, backslashes or newlines' % key)


def _complete(data, initial):
    """Add missing values to data in place (from initial, else generated); True when something was added."""
    added = False
    for key in PASSWORD_KEYS:
        if not isinstance(data.get(key), str) or not data[key]:
            data[key] = initial.get(key) or _token(32)
            added = True
    salts = data.get('salts')
    if not isinstance(salts, dict):
        salts = data['salts'] = {}
    for key in SALT_KEYS:
        if not isinstance(salts.get(key), str) or not salts[key]:
            salts[key] = _token(64, SALT_ALPHABET)
            added = True
    return added


def _rename_old_keys(data):
    """Move values from old key names to the new ones (a value under the new name wins)."""
    renamed = False
    for old, new in OLD_KEYS.items():
        if old in data:
            value = data.pop(old)
            if not data.get(new):
                data[new] = value
            renamed = True
    return renamed


def ensure(path, initial, check_mode):
    """Keep every value of the file at path, add missing ones; return (changed, secrets)."""
    data = {}
    if os.path.exists(path):
        try:
            with open(path) as f:
                data = json.load(f)
        except ValueError:
            raise SecretsError('%s is not valid JSON: fix or remove it by hand' % path) from None
        if not isinstance(data, dict):
            raise SecretsError('%s does not hold a JSON object' % path)
    changed = _rename_old_keys(data)
    changed = _complete(data, initial) or changed
    st = os.stat(path) if os.path.exists(path) else None
    if st is not None and (st.st_mode & 0o777 != 0o600 or st.st_uid != 0):
        changed = True
    if changed and not check_mode:
        directory = os.path.dirname(path)
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o700)
        os.chmod(directory, 0o700)
        text = json.dumps(data, indent=2, sort_keys=True) + '\n'
        write_file(path, text.encode('utf-8'), os.geteuid(), os.getegid(), 0o600)
    return changed, data


def resolve(text, data):
    """text with each @@pressluft_secret:KEY@@ replaced by its secret (KEY: password key or salts.<NAME>)."""
    def value(match):
        key = match.group(1)
        key = OLD_KEYS.get(key, key)
        found = data.get('salts', {}).get(key[6:]) if key.startswith('salts.') else data.get(key)
        if key.split('.')[0] not in (*PASSWORD_KEYS, 'salts') or not isinstance(found, str):
            raise SecretsError('unknown secret reference %s' % match.group(0))
        return found
    return REF_RE.sub(value, text)

# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTTP basic auth of an environment (module env_auth, docs/environments.md): what nginx reads.

The user's password reaches the node only to be hashed (SHA-512 crypt by `openssl passwd -6`, fed on
stdin); nginx reads the hash from <name>.htpasswd. The server-level switch <name>.conf is fixed text
made of the environment's validated name: nothing a user typed is ever part of nginx's configuration.
The node's own health checks (module site_probe) log in as PROBE_USER with a password generated on the
node and kept in the root-only <name>.probe.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

# No ':' (the htpasswd separator), no whitespace or control characters: a user name is one plain word.
USER_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$')
PROBE_USER = 'pressluft-probe'
PASSWORD_MIN, PASSWORD_MAX = 8, 128


def check_user(user):
    if not isinstance(user, str) or not USER_RE.fullmatch(user):
        raise ValueError('invalid basic auth user %r: 1-64 letters, digits, ".", "_" and "-", starting '
                         'with a letter or digit' % (user,))
    if user == PROBE_USER:
        raise ValueError('basic auth user %r is reserved for the node\'s health checks' % (user,))
    return user


def check_password(password):
    """The password itself never goes into the message."""
    if not isinstance(password, str) or not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise ValueError('the basic auth password must have %d-%d characters' % (PASSWORD_MIN, PASSWORD_MAX))
    if any(not c.isprintable() for c in password):
        raise ValueError('the basic auth password must not contain control characters or line breaks')
    return password


def render_conf(names):
    """The server-level switch the environment's server block includes while auth is on."""
    return (
        '# Pressluft env_auth: HTTP basic auth for %(name)s (docs/environments.md). Written by the\n'
        '# module env_auth; the server block exempts ACME challenges (auth_basic off there).\n'
        'auth_basic "%(name)s";\n'
        'auth_basic_user_file %(auth_htpasswd)s;\n' % names
    )


def parse_htpasswd(text):
    """{user: hash} of an htpasswd file's lines."""
    out = {}
    for line in text.splitlines():
        user, sep, hashed = line.partition(':')
        if sep:
            out[user] = hashed
    return out


def render_htpasswd(entries):
    """entries: [(user, hash)] in order."""
    return ''.join('%s:%s\n' % (user, hashed) for user, hashed in entries)


def salt_of(hashed):
    """The salt of a $6$ crypt hash, or None."""
    parts = hashed.split('$')
    if len(parts) == 4 and parts[1] == '6':
        return parts[2]
    return None

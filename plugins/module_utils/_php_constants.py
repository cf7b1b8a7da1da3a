# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Constants of an imported wp-config.php, read as text and never run (docs/import.md): only
`define('NAME', <literal>)` with a scalar literal (string, int, float, true, false, null) counts as a value;
anything else (an expression, a function call, a variable in a string) is reported without one. Values are
written back as PHP literals by php_literal, quoted the way var_export quotes.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math
import re

NAME_RE = re.compile(r'^[A-Za-z_][A-Za-z0-9_]{0,63}$')
# Names Pressluft writes itself, or that would undo its layout (database, keys and salts, URLs, paths,
# multisite, the object cache): never carried over.
OWNED = frozenset((
    'ABSPATH', 'WP_HOME', 'WP_SITEURL', 'WP_ENVIRONMENT_TYPE', 'WP_CACHE', 'WP_CACHE_KEY_SALT', 'WP_DEBUG',
    'DISALLOW_FILE_EDIT', 'FS_METHOD', 'WP_TEMP_DIR', 'WP_CONTENT_DIR', 'WP_CONTENT_URL', 'WP_PLUGIN_DIR',
    'WP_PLUGIN_URL', 'WPMU_PLUGIN_DIR', 'WPMU_PLUGIN_URL', 'UPLOADS', 'WP_LANG_DIR', 'COOKIE_DOMAIN',
    'CUSTOM_USER_TABLE', 'CUSTOM_USER_META_TABLE', 'MULTISITE', 'WP_ALLOW_MULTISITE', 'SUBDOMAIN_INSTALL',
    'DOMAIN_CURRENT_SITE', 'PATH_CURRENT_SITE', 'SITE_ID_CURRENT_SITE', 'BLOG_ID_CURRENT_SITE',
    'AUTH_KEY', 'SECURE_AUTH_KEY', 'LOGGED_IN_KEY', 'NONCE_KEY', 'AUTH_SALT', 'SECURE_AUTH_SALT',
    'LOGGED_IN_SALT', 'NONCE_SALT',
))
OWNED_PREFIXES = ('DB_', 'WP_REDIS_', 'PRESSLUFT_')

_NUMBER = re.compile(r'-?(?:0[xX][0-9a-fA-F]+|0[bB][01]+|\d+\.\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?'
                     r'|\d+[eE][+-]?\d+|\d+)')
_WORD = re.compile(r'[A-Za-z_][A-Za-z0-9_]*')
_DQ_ESCAPES = {'n': '\n', 't': '\t', 'r': '\r', 'v': '\v', 'e': '\x1b', 'f': '\f', '\\': '\\', '$': '$',
               '"': '"'}


class NotLiteral(Exception):
    """The value is not a scalar literal."""


def owned(name):
    return name.upper() in OWNED or name.upper().startswith(OWNED_PREFIXES)


def _skip_space(text, i):
    while i < len(text) and text[i] in ' \t\r\n':
        i += 1
    return i


def _single(text, i):
    """A '...' string at text[i]: (value, index after it). Only \\\\ and \\' are escapes there."""
    out, i = [], i + 1
    while i < len(text):
        c = text[i]
        if c == '\\' and i + 1 < len(text) and text[i + 1] in '\\\'':
            out.append(text[i + 1])
            i += 2
        elif c == "'":
            return ''.join(out), i + 1
        else:
            out.append(c)
            i += 1
    raise NotLiteral('unterminated string')


def _double(text, i):
    """A "..." string without interpolation at text[i]: (value, index after it)."""
    out, i = [], i + 1
    while i < len(text):
        c = text[i]
        if c == '"':
            return ''.join(out), i + 1
        if c == '$' and i + 1 < len(text) and (text[i + 1] == '{' or _WORD.match(text, i + 1)):
            raise NotLiteral('a variable in a string')
        if c == '{' and text.startswith('{$', i):
            raise NotLiteral('a variable in a string')
        if c == '\\' and i + 1 < len(text):
            n = text[i + 1]
            if n in _DQ_ESCAPES:
                out.append(_DQ_ESCAPES[n])
                i += 2
                continue
            m = re.compile(r'[0-7]{1,3}').match(text, i + 1)
            if m:
                out.append(chr(int(m.group(0), 8) & 0xFF))
                i = m.end()
                continue
            m = re.compile(r'x([0-9A-Fa-f]{1,2})').match(text, i + 1)
            if m:
                out.append(chr(int(m.group(1), 16)))
                i = m.end()
                continue
            if n == 'u':
                raise NotLiteral('a \\u escape')
        out.append(c)
        i += 1
    raise NotLiteral('unterminated string')


def _string(text, i):
    if i < len(text) and text[i] == "'":
        return _single(text, i)
    if i < len(text) and text[i] == '"':
        return _double(text, i)
    raise NotLiteral('not a string')


def _number(token):
    sign = -1 if token.startswith('-') else 1
    t = token.lstrip('-')
    if t[:2] in ('0x', '0X'):
        return sign * int(t[2:], 16)
    if t[:2] in ('0b', '0B'):
        return sign * int(t[2:], 2)
    if re.match(r'^\d+$', t):
        return sign * (int(t, 8) if len(t) > 1 and t.startswith('0') else int(t))
    value = sign * float(t)
    if not math.isfinite(value):
        raise NotLiteral('not a finite number')
    return value


def _value(text, i):
    """A scalar literal at text[i]: (value, index after it)."""
    if i < len(text) and text[i] in '\'"':
        return _string(text, i)
    m = _NUMBER.match(text, i)
    if m and not _WORD.match(text, m.end()) and not text.startswith('.', m.end()):
        if re.match(r'^-?0\d*[89]', m.group(0)):
            raise NotLiteral('not an octal number')
        return _number(m.group(0)), m.end()
    m = _WORD.match(text, i)
    if m and m.group(0).lower() in ('true', 'false', 'null'):
        return {'true': True, 'false': False, 'null': None}[m.group(0).lower()], m.end()
    raise NotLiteral('not a scalar literal')


def _define(text, i):
    """After `define` at text[i]: (name or None, value, is_literal, index to go on from)."""
    j = _skip_space(text, i)
    if j >= len(text) or text[j] != '(':
        return None, None, False, i
    try:
        name, j = _string(text, _skip_space(text, j + 1))
    except NotLiteral:
        return None, None, False, i
    j = _skip_space(text, j)
    if j >= len(text) or text[j] != ',' or not NAME_RE.match(name):
        return None, None, False, i
    try:
        value, k = _value(text, _skip_space(text, j + 1))
        k = _skip_space(text, k)
        if k >= len(text) or text[k] != ')':
            raise NotLiteral('more than a literal')
        return name, value, True, k + 1
    except NotLiteral:
        return name, None, False, j + 1


def read_constants(text):
    """{name: (value, literal)} of every define() in PHP source text, in order; the first define of a name
    wins, as in PHP. Comments and strings are skipped, so a define in either does not count."""
    found, i, n = {}, 0, len(text)
    while i < n:
        c = text[i]
        if c == '#' or text.startswith('//', i):
            end = text.find('\n', i)
            i = n if end < 0 else end
        elif text.startswith('/*', i):
            end = text.find('*/', i + 2)
            i = n if end < 0 else end + 2
        elif c in '\'"':
            try:
                i = _string(text, i)[1]
            except NotLiteral:
                i += 1
        elif c.isalpha() or c == '_':
            m = _WORD.match(text, i)
            word, i = m.group(0), m.end()
            prev = text[m.start() - 1] if m.start() else ' '
            if word.lower() == 'define' and prev not in '$>:':
                name, value, literal, i = _define(text, i)
                if name and name not in found:
                    found[name] = (value, literal)
        else:
            i += 1
    return found


def php_literal(value):
    """value as PHP source: strings single-quoted with \\ and ' escaped (as var_export writes them)."""
    if value is None:
        return 'null'
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError('not a finite number')
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace('\\', '\\\\').replace("'", "\\'") + "'"
    raise ValueError('not a scalar: %r' % type(value))


def constants_php(constants):
    """The PHP file defining constants ({name: value}) that wp-config.php loads."""
    lines = ['<?php', '// Written by Pressluft site_import: constants carried over from the imported '
             'wp-config.php (docs/import.md).']
    for name, value in constants.items():
        if not NAME_RE.match(name) or owned(name):
            raise ValueError('constant %r cannot be carried over' % name)
        lines.append("defined('%s') || define('%s', %s);" % (name, name, php_literal(value)))
    return '\n'.join(lines) + '\n'

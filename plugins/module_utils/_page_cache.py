# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The nginx page cache of an environment (docs/cache.md): its configuration and its purge.

Each environment has its own zone and directory, so a purge computes paths inside that directory only:
purging one environment can never reach another's entries. Used by modules page_cache and cache_purge.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import hashlib
import os
import re

from ansible_collections.pressluft.wordpress.plugins.module_utils._names import validate_domain

# fullmatch() only: with match(), '$' also accepts a trailing newline.
SIZE_RE = re.compile(r'[1-9][0-9]{0,5}[km]?')
TIME_RE = re.compile(r'[1-9][0-9]{0,5}[smhd]')
# The cache key: a purge recomputes it, so it and cache_key() below must agree.
CACHE_KEY = '$scheme$request_method$host$request_uri'
LEVELS = '1:2'
_ENTRY_RE = re.compile(r'[0-9a-f]{32}')
_SERVER_NAME_RE = re.compile(r'^\s*server_name\s+([^;]*);', re.M)
_URL_RE = re.compile(r'(https?)://([a-z0-9.-]{1,253})(/[\x21-\x7e]*)?')

# Requests that always go to PHP, never to or from the cache: not GET/HEAD, any query string, a session
# of WordPress (logged in, post password, comment author) or WooCommerce (cart, session), and the
# pages that are per visitor (admin, login, WooCommerce's cart, checkout and account).
SKIP_COOKIES = ('wordpress_logged_in_', 'wordpress_sec_', 'wordpress_no_cache', 'wp-postpass_',
                'comment_author_', 'woocommerce_items_in_cart', 'woocommerce_cart_hash',
                'wp_woocommerce_session_')
SKIP_PATHS = (r'/wp-admin/', r'/wp-login\.php', r'/wp-cron\.php', r'/xmlrpc\.php', r'/wp-json/',
              r'/cart(/|$)', r'/checkout(/|$)', r'/my-account(/|$)')


def check_size(name, value):
    if not isinstance(value, str) or not SIZE_RE.fullmatch(value):
        raise ValueError('%s must be a size such as 10m or 512k, got %r' % (name, value))
    return value


def check_time(name, value):
    if not isinstance(value, str) or not TIME_RE.fullmatch(value):
        raise ValueError('%s must be a duration such as 10m, 1h or 30s, got %r' % (name, value))
    return value


def render_zone(names, keys_zone_size, max_size, inactive):
    """The http-level file: the environment's cache directory and zone (present whether enabled or not)."""
    return ('# Pressluft page cache zone of %(name)s (docs/cache.md); written by page_cache.\n'
            'fastcgi_cache_path %(dir)s levels=%(levels)s keys_zone=%(zone)s:%(keys)s max_size=%(max)s '
            'inactive=%(inactive)s use_temp_path=off;\n'
            % dict(name=names['name'], dir=names['cache_dir'], levels=LEVELS, zone=names['cache_zone'],
                   keys=keys_zone_size, max=max_size, inactive=inactive))


def render_switch(names, enabled, valid):
    """The server-level file the server block includes: the cache rules, or nothing when disabled."""
    head = '# Pressluft page cache of %s: %s (pressluft cache enable|disable; docs/cache.md).\n' % (
        names['name'], 'enabled' if enabled else 'disabled')
    if not enabled:
        return head
    cookies = '|'.join(re.escape(c) for c in SKIP_COOKIES)
    paths = '|'.join(SKIP_PATHS)
    return head + '\n'.join((
        'set $pressluft_cache_skip 0;',
        'if ($request_method !~ ^(GET|HEAD)$) { set $pressluft_cache_skip 1; }',
        'if ($query_string != "") { set $pressluft_cache_skip 1; }',
        'if ($http_cookie ~* "(%s)") { set $pressluft_cache_skip 1; }' % cookies,
        'if ($request_uri ~* "^(%s)") { set $pressluft_cache_skip 1; }' % paths,
        'fastcgi_cache %s;' % names['cache_zone'],
        'fastcgi_cache_key "%s";' % CACHE_KEY,
        'fastcgi_cache_valid 200 301 302 %s;' % valid,
        'fastcgi_cache_bypass $pressluft_cache_skip;',
        # nginx already refuses to store a response with Set-Cookie (or Cache-Control private/no-store);
        # said again here so no later fastcgi_ignore_headers can turn that off by accident.
        'fastcgi_no_cache $pressluft_cache_skip $upstream_http_set_cookie;',
        'fastcgi_cache_lock on;',
        'fastcgi_cache_use_stale error timeout updating http_500 http_503;',
        'add_header X-Cache $upstream_cache_status always;',
        '',
    ))


def server_names(conf_text):
    """Every name the server block's server_name lines list (the hosts the environment owns)."""
    found = set()
    for match in _SERVER_NAME_RE.finditer(conf_text):
        found.update(match.group(1).split())
    return found


def check_url(url, owned):
    """(scheme, host, path) of a purge URL, or ValueError; the host must be one the environment serves."""
    match = _URL_RE.fullmatch(url) if isinstance(url, str) else None
    if not match:
        raise ValueError('invalid URL %r: use http(s)://HOST/PATH, lowercase host, no spaces' % (url,))
    scheme, host, path = match.group(1), match.group(2), match.group(3) or '/'
    validate_domain(host)
    if '?' in path or '#' in path:
        raise ValueError('URL %r has a query or fragment: pages with a query string are never cached'
                         % (url,))
    if host not in owned:
        raise ValueError('host %s of %r is not served by this environment (its names: %s)'
                         % (host, url, ', '.join(sorted(owned)) or 'none'))
    return scheme, host, path


def cache_key(scheme, method, host, path):
    return scheme + method + host + path


def entry_path(cache_dir, key):
    """Where nginx keeps the entry of key with levels=1:2: <dir>/<last hex>/<two before it>/<md5>."""
    digest = hashlib.md5(key.encode('utf-8')).hexdigest()  # nosec - nginx's own key hash, not security
    return os.path.join(cache_dir, digest[-1], digest[-3:-1], digest)


def url_entries(cache_dir, host, path):
    """Every entry a page can have: both schemes (behind TLS or not), GET and HEAD."""
    return [entry_path(cache_dir, cache_key(scheme, method, host, path))
            for scheme in ('http', 'https') for method in ('GET', 'HEAD')]


def all_entries(cache_dir):
    """Every cache file under cache_dir (nginx's temporary files, named <md5>.<n>, are left to nginx)."""
    found = []
    for top, dirs, files in os.walk(cache_dir):
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(top, d))]
        found.extend(os.path.join(top, f) for f in files if _ENTRY_RE.fullmatch(f))
    return found


def remove(paths):
    """Unlink each path; return those that existed. nginx treats a missing file as a miss (MISS)."""
    removed = []
    for path in paths:
        try:
            os.unlink(path)
            removed.append(path)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise
    return removed

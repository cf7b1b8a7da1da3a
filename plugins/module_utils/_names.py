# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Names of sites, environments and domains, and the names derived from them.

The single implementation of docs/contracts.md "Names": modules, the env_names filter and the
Python library all derive paths and account names here, so they can never disagree.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

# Always use fullmatch(): with match(), '$' also accepts a trailing newline.
SITE_RE = re.compile(r'^[a-z][a-z0-9]{1,19}$')
ENV_RE = re.compile(r'^[a-z][a-z0-9]{1,10}$')
DOMAIN_LABEL_RE = re.compile(r'^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$')
PHP_VERSION_RE = re.compile(r'^[5-9]\.[0-9]{1,2}$')

# Site names that would clash with system accounts, services or our own users.
RESERVED = frozenset((
    'root', 'admin', 'administrator', 'mysql', 'mariadb', 'nginx', 'redis', 'postgres', 'www',
    'wwwdata', 'daemon', 'bin', 'sys', 'sync', 'games', 'man', 'lp', 'mail', 'news', 'uucp',
    'proxy', 'backup', 'list', 'irc', 'nobody', 'systemd', 'sshd', 'messagebus', 'pressluft',
    'debian', 'ubuntu', 'sudo',
))

DEFAULT_ENV = 'production'  # the environment a site gets first (pressluft_lib names.DEFAULT_ENV)
# Inventory group and host names a node must not take (the inventory plugin's top group is
# pressluft); its provider_*/role_* groups contain '_', which NODE_RE refuses.
RESERVED_NODES = frozenset(('all', 'ungrouped', 'localhost', 'pressluft'))
NODE_RE = re.compile(r'^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$')
# <site>_<env> names the MariaDB schema and user: never a system schema.
RESERVED_ENV_NAMES = frozenset(('information_schema', 'performance_schema', 'mysql', 'sys'))

SITES_ROOT = '/var/www/sites'
POOL_DIR = '/etc/php/{version}/fpm/pool.d'
SOCKET_DIR = '/run/php'
NGINX_SITES_DIR = '/etc/nginx/pressluft-sites'
SECRETS_DIR = '/etc/pressluft/secrets'
# Page cache (docs/cache.md): the zone's http-level file goes where nginx.conf includes conf.d, the
# server-level switch where the server block includes it; the cache directory's parent is root's.
NGINX_CACHE_DIR = '/etc/nginx/pressluft-cache'
# A file here makes the environment's server block refuse writes (site move: the source until confirmed).
NGINX_READONLY_DIR = '/etc/nginx/pressluft-readonly'
# HTTP basic auth of an environment (env_auth): the server block includes <name>.conf when it exists.
NGINX_AUTH_DIR = '/etc/nginx/pressluft-auth'
NGINX_CONF_D = '/etc/nginx/conf.d'
PAGE_CACHE_ROOT = '/var/cache/pressluft/page'


def validate_site(name):
    """Return the site name, or raise ValueError saying what is wrong with it."""
    if not isinstance(name, str) or not SITE_RE.fullmatch(name):
        raise ValueError('invalid site name %r: use 2-20 lowercase letters and digits, '
                         'starting with a letter' % (name,))
    if name in RESERVED:
        raise ValueError('site name %r is reserved' % (name,))
    return name


def validate_env(name):
    """Return the environment name, or raise ValueError."""
    if not isinstance(name, str) or not ENV_RE.fullmatch(name):
        raise ValueError('invalid environment name %r: use 2-11 lowercase letters and digits, '
                         'starting with a letter' % (name,))
    return name


def validate_node(name):
    """Return the node (inventory host) name, or raise ValueError."""
    if not isinstance(name, str) or not NODE_RE.fullmatch(name):
        raise ValueError('invalid node name %r: lowercase letters, digits, "." and "-", at most 63 characters'
                         % (name,))
    if name in RESERVED_NODES:
        raise ValueError('node name %r is reserved (an inventory group or host)' % (name,))
    return name


def validate_domain(name):
    """Return the domain (lowercase RFC 1123 host name with at least two labels), or raise ValueError."""
    if not isinstance(name, str) or not name or len(name) > 253:
        raise ValueError('invalid domain %r: must be 1-253 characters' % (name,))
    labels = name.split('.')
    if len(labels) < 2 or not all(DOMAIN_LABEL_RE.fullmatch(label) for label in labels):
        raise ValueError('invalid domain %r: use lowercase labels of letters, digits and inner hyphens, '
                         'at least two labels separated by dots' % (name,))
    return name


def validate_php_version(version):
    """Return a PHP version like '8.2', or raise ValueError."""
    if not isinstance(version, str) or not PHP_VERSION_RE.fullmatch(version):
        raise ValueError('invalid PHP version %r: use major.minor such as "8.2"' % (version,))
    return version


def pool_file(version, site, env):
    """Path of the PHP-FPM pool file of an environment for one PHP version."""
    validate_php_version(version)
    return '%s/pressluft-%s.conf' % (POOL_DIR.format(version=version), env_names(site, env)['user'])


def env_names(site, env=DEFAULT_ENV):
    """Every name derived from (site, env); raises ValueError for invalid names."""
    validate_site(site)
    validate_env(env)
    name = '%s_%s' % (site, env)
    if name in RESERVED_ENV_NAMES:
        raise ValueError('site %r with environment %r is reserved: %s is a MariaDB system schema'
                         % (site, env, name))
    root = '%s/%s/%s' % (SITES_ROOT, site, env)
    return {
        'site': site,
        'env': env,
        'name': name,
        'user': name,
        'group': name,
        'db_name': name,
        'db_user': name,
        'redis_user': name,
        'redis_prefix': name + ':',
        'root': root,
        'releases': root + '/releases',
        'current': root + '/current',
        'shared': root + '/shared',
        'uploads': root + '/shared/uploads',
        'wp_config': root + '/shared/wp-config.php',
        'tmp': root + '/tmp',
        'logs': root + '/logs',
        'pool_name': name,
        'pool_socket': '%s/pressluft-%s.sock' % (SOCKET_DIR, name),
        'nginx_conf': '%s/%s.conf' % (NGINX_SITES_DIR, name),
        'secrets_file': '%s/%s.json' % (SECRETS_DIR, name),
        'cache_zone': 'pressluft_' + name,
        'cache_dir': '%s/%s' % (PAGE_CACHE_ROOT, name),
        'cache_conf': '%s/%s.conf' % (NGINX_CACHE_DIR, name),
        'cache_zone_conf': '%s/pressluft-cache-%s.conf' % (NGINX_CONF_D, name),
        'readonly_conf': '%s/%s.conf' % (NGINX_READONLY_DIR, name),
        'auth_conf': '%s/%s.conf' % (NGINX_AUTH_DIR, name),
        'auth_htpasswd': '%s/%s.htpasswd' % (NGINX_AUTH_DIR, name),
        'auth_probe': '%s/%s.probe' % (NGINX_AUTH_DIR, name),
    }

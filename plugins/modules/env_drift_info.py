#!/usr/bin/python
# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: env_drift_info
short_description: Compare a Pressluft environment with another of its site (code, schema, content writes)
description:
  - Reads both environments through WP-CLI, each as its own user, and changes nothing.
  - Code - WordPress core version, plugins (must-use plugins and drop-ins too) and themes with their
    versions, and the live release (what C(current) points at).
  - Schema - the table list and a hash of each table's C(CREATE TABLE) (from C(wp db export --no-data),
    C(AUTO_INCREMENT) counters left out), and one hash of them all.
  - Content - the rows of every table in both (one read-only C(wp db query) of C(COUNT(*))s), the tables
    whose row counts differ, and the newest post, comment and order times of O(against); with O(since),
    whether O(against) wrote posts, comments or orders after it.
version_added: "1.0.0"
author:
  - Pressluft developers (@pressluft)
extends_documentation_fragment:
  - pressluft.wordpress.env
  - pressluft.wordpress.wp_cli
  - pressluft.wordpress.attributes
options:
  against:
    description: The environment compared with (same site); never O(env).
    type: str
    default: production
  since:
    description:
      - UTC time C(YYYY-MM-DD HH:MM:SS) (when O(env) was cloned); later writes of O(against) are flagged.
    type: str
attributes:
  check_mode:
    description: Reads only, in check mode too.
    support: full
  diff_mode:
    support: none
'''

EXAMPLES = r'''
- name: Compare staging with production
  pressluft.wordpress.env_drift_info:
    site: shop
    env: staging
    since: "2026-12-06 10:00:00"
  register: drift
'''

RETURN = r'''
report:
  description:
    - The comparison. C(env) and C(against) each hold core, plugins, themes, release, tables (name to hash),
      schema_hash and rows (name to count); C(differs) lists what differs, C(writes) the content side.
  returned: success
  type: dict
'''

import hashlib
import json
import os
import re

from ansible_collections.pressluft.wordpress.plugins.module_utils._env import WP_CLI_ARGSPEC, env_module
from ansible_collections.pressluft.wordpress.plugins.module_utils._names import env_names
from ansible_collections.pressluft.wordpress.plugins.module_utils._wp_cli import WpCli, WpCliError

SINCE_RE = re.compile(r'^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}$')
TABLE_RE = re.compile(r'^[A-Za-z0-9_$]{1,64}$')
CREATE_RE = re.compile(r'CREATE TABLE `([^`]+)` \((.*?)\n\)([^;]*);', re.S)


class DriftError(Exception):
    pass


def _check(p, names):
    other = env_names(names['site'], p['against'])
    if other['env'] == names['env']:
        raise ValueError('against %r is the environment itself' % p['against'])
    if p['since'] and not SINCE_RE.match(p['since']):
        raise ValueError('invalid since %r: use YYYY-MM-DD HH:MM:SS (UTC)' % p['since'])
    # Extra vars parse an unquoted time as a YAML timestamp, which reaches the module in ISO form.
    p['since'] = (p['since'] or '').replace('T', ' ') or None
    if p['run_as']:
        raise ValueError('run_as does not apply: each environment is read as its own user')
    p['other'] = other


def schema(dump):
    """{table: sha256 of its CREATE TABLE without the AUTO_INCREMENT counter} from a --no-data dump."""
    out = {}
    for name, body, options in CREATE_RE.findall(dump):
        options = re.sub(r'\s*AUTO_INCREMENT=\d+', '', options)
        out[name] = hashlib.sha256(('%s\n%s' % (body, options)).encode('utf-8')).hexdigest()[:16]
    return out


class Reader(object):
    def __init__(self, module, names):
        self.names = names
        self.cli = WpCli(module, names['user'], names['current'], label=names['name'])

    def wp(self, *args):
        return self.cli.out(args)

    def items(self, kind):
        rows = json.loads(self.wp(kind, 'list', '--format=json', '--fields=name,version,status') or '[]')
        return dict((r['name'], '%s (%s)' % (r.get('version') or '-', r.get('status'))) for r in rows)

    def read(self):
        current = self.names['current']
        if not os.path.islink(current):
            raise DriftError('%s has no live release' % self.names['name'])
        tables = schema(self.wp('db', 'export', '-', '--no-data', '--skip-comments'))
        for t in tables:
            if not TABLE_RE.match(t):
                raise DriftError('table %r of %s has a name drift cannot query safely'
                                 % (t, self.names['name']))
        rows = {}
        if tables:
            query = ' UNION ALL '.join("SELECT '%s', COUNT(*) FROM `%s`" % (t, t) for t in sorted(tables))
            for line in self.wp('db', 'query', query, '--skip-column-names', '--batch').splitlines():
                name, _tab, count = line.partition('\t')
                rows[name] = int(count)
        return {
            'core': self.wp('core', 'version').strip(),
            'plugins': self.items('plugin'),
            'themes': self.items('theme'),
            'release': os.path.basename(os.path.realpath(current)),
            'tables': tables,
            'schema_hash': hashlib.sha256(json.dumps(tables, sort_keys=True).encode()).hexdigest()[:16],
            'rows': rows,
        }

    def newest(self):
        def one(*args):
            return self.wp(*args).strip() or None
        return {
            'post': one('post', 'list', '--post_type=any', '--post_status=any', '--orderby=modified',
                        '--order=DESC', '--posts_per_page=1', '--field=post_modified_gmt'),
            'comment': one('comment', 'list', '--orderby=comment_date_gmt', '--order=DESC', '--number=1',
                           '--field=comment_date_gmt'),
            'order': one('post', 'list', '--post_type=shop_order', '--post_status=any', '--orderby=modified',
                         '--order=DESC', '--posts_per_page=1', '--field=post_modified_gmt'),
        }


def compare(mine, theirs):
    differs = []
    for key in ('core', 'release', 'schema_hash'):
        if mine[key] != theirs[key]:
            differs.append(key)
    for key in ('plugins', 'themes'):
        if mine[key] != theirs[key]:
            differs.append(key)
    return differs


def main():
    argument_spec = dict(against=dict(type='str', default='production'), since=dict(type='str'))
    argument_spec.update(WP_CLI_ARGSPEC)
    module, names = env_module(argument_spec, check=_check, fencing=False)
    p = module.params
    try:
        mine = Reader(module, names).read()
        other = Reader(module, p['other'])
        theirs = other.read()
        newest = other.newest()
    except (DriftError, WpCliError, ValueError) as exc:
        module.fail_json(msg=str(exc))
    changed_rows = dict((t, {'env': mine['rows'].get(t), 'against': n})
                        for t, n in sorted(theirs['rows'].items()) if mine['rows'].get(t) != n)
    since = p['since']
    # Same second counts as after: since is cut to whole seconds, and a false alarm is the safe side.
    after = sorted(k for k, v in newest.items() if since and v and v >= since)
    writes = {'newest': newest, 'tables': changed_rows, 'since': since, 'after_since': after}
    report = {'env': dict(name=names['env'], **mine), 'against': dict(name=p['against'], **theirs),
              'differs': compare(mine, theirs), 'writes': writes}
    module.exit_json(changed=False, report=report)


if __name__ == '__main__':
    main()

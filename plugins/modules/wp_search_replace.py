#!/usr/bin/python
# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: wp_search_replace
short_description: Rewrite a WordPress environment's URLs in its database, in every form real sites store them
description:
  - Checks the fencing token of the site first, so a stale job changes nothing.
  - Replaces O(from_url) by O(to_url) in every table of the environment's database with WP-CLI's own
    C(wp search-replace) (run as the environment's user), which keeps PHP-serialized values valid
    (lengths are recomputed, nested serialized data too) and never touches primary keys or C(user_pass).
  - One pass per form a URL takes in a database - C(http://HOST), C(https://HOST) and the JSON-escaped
    C(http:\/\/HOST) and C(https:\/\/HOST) (block editor attributes, page builders) - each replaced by the
    matching form of O(to_url). Columns in O(skip_columns) (C(guid) by default, which must never change)
    are left alone.
  - WP-CLI skips tables without a primary key; the module rewrites those (custom tables of plugins) through
    C(wp search-replace --export) of just those tables and C(wp db import), with the same serialized-data
    handling.
  - After the passes a dry run of each pass must count 0 replacements, or the module fails naming the pass.
  - The passes, their dry runs and the cache flush run in one WordPress load (C(wp eval-file) reading a
    fixed script on stdin, the commands handed to it as JSON data and run with C(WP_CLI::run_command)),
    as each start of WP-CLI costs about half a second.
  - Returns the replaced-row count of each pass (rows per column, as WP-CLI counts them).
version_added: "1.0.0"
author:
  - Pressluft developers (@pressluft)
extends_documentation_fragment:
  - pressluft.wordpress.env
  - pressluft.wordpress.fencing
  - pressluft.wordpress.wp_cli
  - pressluft.wordpress.attributes
options:
  from_url:
    description:
      - The URL to replace, C(http://) or C(https://) then a host, an optional port and path (no query).
      - Both schemes are replaced whichever one is given.
    type: str
    required: true
  to_url:
    description:
      - The URL that replaces it, in the same form. It must not contain a form of O(from_url), or a dry run
        could never count 0.
    type: str
    required: true
  path:
    description: The WordPress directory WP-CLI runs in; defaults to the environment's C(current) release.
    type: path
  tables:
    description: Only these tables (names of letters, digits and _); empty for every table of the database.
    type: list
    elements: str
    default: []
  forms:
    description:
      - Only the passes of these forms (C(http), C(https), C(http_escaped) and C(https_escaped), the
        JSON-escaped C(http:\/\/)); the others, and their dry runs, are skipped.
      - For a caller that knows the other forms are absent (site_import reads its dump for them).
    type: list
    elements: str
    choices: [http, https, http_escaped, https_escaped]
    default: [http, https, http_escaped, https_escaped]
  skip_columns:
    description: Columns never changed, in any table.
    type: list
    elements: str
    default: [guid]
  flush_cache:
    description: Flush the object cache (C(wp cache flush)) after a change, so no old value is served from it.
    type: bool
    default: true
attributes:
  check_mode:
    description: Runs every pass as a dry run and returns the counts it would replace; changes nothing.
    support: full
  diff_mode:
    support: none
'''

EXAMPLES = r'''
- name: Rewrite the production URL in the staging database
  pressluft.wordpress.wp_search_replace:
    site: shop
    env: staging
    from_url: https://shop.example.com
    to_url: http://staging.shop.example.net
    fencing_token: "{{ pressluft_fencing_token | default(omit) }}"
  register: replaced

- name: Count what would be replaced
  pressluft.wordpress.wp_search_replace:
    site: shop
    env: staging
    from_url: https://shop.example.com
    to_url: http://staging.shop.example.net
  check_mode: true
'''

RETURN = r'''
passes:
  description: One entry per pass, in the order they ran.
  returned: success
  type: list
  elements: dict
  contains:
    search:
      description: The string replaced.
      type: str
      sample: https://shop.example.com
    replace:
      description: The string that replaced it.
      type: str
      sample: http://staging.shop.example.net
    rows:
      description: Replaced rows (per column), or in check mode the rows that would be replaced.
      type: int
      sample: 42
    tables:
      description: Replaced rows per table, tables with none left out.
      type: dict
      sample: {"wp_options": 3, "wp_posts": 39}
total_rows:
  description: Sum of the passes' rows.
  returned: success
  type: int
  sample: 57
verified:
  description: True when a dry run of every pass counted 0 after the passes (never in check mode).
  returned: success
  type: bool
'''

import json
import os
import re

from ansible_collections.pressluft.wordpress.plugins.module_utils._env import (
    WP_CLI_ARGSPEC,
    check_run_as,
    env_module,
)
from ansible_collections.pressluft.wordpress.plugins.module_utils._wp_cli import WpCli, WpCliError

URL_RE = re.compile(r'^https?://([^\s/?#\\\'"]+(/[^\s?#\\\'"]*)?)$')
COLUMN_RE = re.compile(r'^[A-Za-z0-9_$]{1,64}$')
TABLE_RE = re.compile(r'^[A-Za-z0-9_$]{1,64}$')
REPORT_HEADER = ['Table', 'Column', 'Replacements', 'Type']
# The passes() in order.
FORMS = ('http', 'https', 'http_escaped', 'https_escaped')


class SearchReplaceError(Exception):
    pass


def passes(from_url, to_url):
    """(search, replace) of each form a URL takes: plain http/https, then JSON-escaped (/ as \\/)."""
    host = URL_RE.match(from_url).group(1)
    pairs = []
    for escaped in (False, True):
        esc = (lambda s: s.replace('/', '\\/')) if escaped else (lambda s: s)
        for scheme in ('http', 'https'):
            pairs.append((esc('%s://%s' % (scheme, host)), esc(to_url)))
    return pairs


def _check(p, names):
    for key in ('from_url', 'to_url'):
        p[key] = (p[key] or '').rstrip('/')
        if not URL_RE.match(p[key]):
            raise ValueError('invalid %s %r: use http(s)://host[:port][/path]' % (key, p[key]))
    for search, replace in passes(p['from_url'], p['to_url']):
        if search in replace:
            raise ValueError('to_url %r contains %r: a dry run would never count 0, choose another URL'
                             % (p['to_url'], search))
    for table in p['tables']:
        if not TABLE_RE.match(table) or '$' in table:
            raise ValueError('invalid table name %r in tables: letters, digits and _ only' % (table,))
    for col in p['skip_columns']:
        if not COLUMN_RE.match(col):
            raise ValueError('invalid column name %r in skip_columns' % (col,))
    p['path'] = p['path'] or names['current']
    check_run_as(p, names)


def parse_report(text):
    """{table: rows} and the tables WP-CLI skipped, from its report (tab-separated when not on a TTY)."""
    counts, skipped = {}, []
    for line in text.splitlines():
        fields = line.split('\t')
        if len(fields) != 4 or fields == REPORT_HEADER:
            continue
        table, _col, count, _type = fields
        if count == 'skipped':
            skipped.append(table)
        elif count.isdigit():
            counts[table] = counts.get(table, 0) + int(count)
        else:
            raise SearchReplaceError('unexpected line in the report of wp search-replace: %r' % line)
    return counts, skipped


def count(out):
    """The number `wp search-replace ... --format=count` prints last."""
    lines = out.strip().splitlines()
    if not lines or not lines[-1].strip().isdigit():
        raise SearchReplaceError('wp search-replace printed no count: %r' % '\n'.join(lines)[-500:])
    return int(lines[-1].strip())


# WP-CLI commands in one WordPress load. They arrive as data (JSON, the first argument), are run without any
# command line being parsed, and each one's output follows a marker line.
BATCH_PHP = r"""<?php
$plan = json_decode($args[0], true);
foreach ($plan as $i => $command) {
    WP_CLI::line('@@pressluft-command ' . $i . '@@');
    WP_CLI::run_command($command[0], $command[1]);
}
"""
MARKER_RE = re.compile(r'^@@pressluft-command (\d+)@@$', re.M)


def batch(wp, commands):
    """[(args, assoc args)] run in one `wp eval-file -`; returns each command's output."""
    plan = [[list(a), dict(kw)] for a, kw in commands]
    out = wp.out(['eval-file', '-', json.dumps(plan)], data=BATCH_PHP, what='wp search-replace')
    parts = MARKER_RE.split(out)[1:]  # [index, output, index, output, ...]
    outputs = dict((int(parts[i]), parts[i + 1]) for i in range(0, len(parts), 2))
    if sorted(outputs) != list(range(len(commands))):
        raise SearchReplaceError('WP-CLI ran %d of %d commands: %r'
                                 % (len(outputs), len(commands), out[-500:]))
    return [outputs[i] for i in range(len(commands))]


class Replacer(object):
    def __init__(self, module, wp, tmp_dir):
        self.module = module
        self.wp = wp
        self.tmp_dir = tmp_dir
        self.assoc = {'skip-columns': ','.join(module.params['skip_columns']), 'all-tables': True}
        self.tables = list(module.params['tables'])

    def command(self, search, replace, **extra):
        return ['search-replace', search, replace, *self.tables], dict(self.assoc, **extra)

    def run(self, pairs, dry_run, verify, flush):
        """The passes (reports), then with verify the dry run of each (counts), then with flush the cache
        flush, in one WordPress load; tables WP-CLI skips (no primary key) get their own passes after.
        Returns per pair (search, replace, {table: rows replaced}, rows its dry run still finds or None)."""
        commands = [self.command(s, r, **({'dry-run': True} if dry_run else {})) for s, r in pairs]
        if verify:
            commands += [self.command(s, r, **{'dry-run': True, 'format': 'count'}) for s, r in pairs]
        if flush:
            commands.append((['cache', 'flush'], {}))
        outputs = batch(self.wp, commands)
        reports = [parse_report(out) for out in outputs[:len(pairs)]]
        keyless = sorted(set(t for _counts, skipped in reports for t in skipped))
        for table in keyless:
            if not TABLE_RE.match(table):
                raise SearchReplaceError('table %r has a name search-replace cannot be given safely' % table)
        results = []
        for i, (search, replace) in enumerate(pairs):
            counts = reports[i][0]
            left = count(outputs[len(pairs) + i]) if verify else None
            if keyless:
                n = self._keyless_pass(keyless, search, replace, dry_run)
                if n:
                    counts['(tables without primary key: %s)' % ','.join(keyless)] = n
            results.append((search, replace, counts, left))
        if keyless and verify:  # after every keyless pass, as the dry runs above came after every pass
            results = [(s, r, c, n + self._keyless_pass(keyless, s, r, True)) for s, r, c, n in results]
        if keyless and flush and not dry_run:  # the keyless imports came after the flush
            self.wp.run(['cache', 'flush'])
        return results

    def _keyless_pass(self, keyless, search, replace, dry_run):
        """WP-CLI's export of just the keyless tables, replacing as it writes; imported unless dry_run."""
        export = os.path.join(self.tmp_dir, 'pressluft-search-replace-%d.sql' % os.getpid())
        try:
            n = count(self.wp.out(['search-replace', search, replace, *keyless, '--all-tables',
                                   '--skip-columns=%s' % self.assoc['skip-columns'], '--export=%s' % export,
                                   '--format=count']))
            if n and not dry_run:
                self.wp.run(['db', 'import', export])
            return n
        finally:
            if os.path.exists(export):
                os.unlink(export)


def main():
    argument_spec = dict(
        from_url=dict(type='str', required=True),
        to_url=dict(type='str', required=True),
        path=dict(type='path'),
        tables=dict(type='list', elements='str', default=[]),
        forms=dict(type='list', elements='str', choices=list(FORMS), default=list(FORMS)),
        skip_columns=dict(type='list', elements='str', default=['guid']),
        flush_cache=dict(type='bool', default=True),
    )
    argument_spec.update(WP_CLI_ARGSPEC)
    module, names = env_module(argument_spec, check=_check)
    p = module.params
    result = dict(changed=False, passes=[], total_rows=0, verified=False)
    if not os.path.isfile(os.path.join(p['path'], 'wp-load.php')):
        module.fail_json(msg='%s holds no WordPress (no wp-load.php): create the environment first'
                         % p['path'], **result)
    try:
        wp = WpCli(module, p['run_as'], p['path'])
        replacer = Replacer(module, wp, names['tmp'])
        pairs = [pair for i, pair in enumerate(passes(p['from_url'], p['to_url'])) if FORMS[i] in p['forms']]
        if not pairs:  # no form to rewrite: nothing to verify either
            result['verified'] = True
            module.exit_json(**result)
        # The flush goes with the passes even when they change nothing: one process either way.
        done = replacer.run(pairs, dry_run=module.check_mode, verify=not module.check_mode,
                            flush=p['flush_cache'] and not module.check_mode)
        for search, replace, table_counts, _left in done:
            rows = sum(table_counts.values())
            result['passes'].append(dict(search=search, replace=replace, rows=rows,
                                         tables=dict((t, n) for t, n in table_counts.items() if n)))
            result['total_rows'] += rows
        result['changed'] = result['total_rows'] > 0
        if module.check_mode:
            module.exit_json(**result)
        left = [(search, n) for search, _replace, _counts, n in done if n]
        if left:
            module.fail_json(msg='after the passes a dry run still finds %s' % ', '.join(
                '%d rows with %r' % (n, s) for s, n in left), **result)
        result['verified'] = True
    except (SearchReplaceError, WpCliError) as exc:
        module.fail_json(msg=str(exc), **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()

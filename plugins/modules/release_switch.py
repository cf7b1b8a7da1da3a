#!/usr/bin/python
# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: release_switch
short_description: Switch, mark, roll back and prune the releases of a Pressluft environment
version_added: "1.0.0"
description:
  - Manages the releases of the environment tree C(/var/www/sites/<site>/<env>), that is its
    C(releases/<release>/) directories and the C(current) symlink that nginx and PHP-FPM serve.
  - Keeps its bookkeeping in C(<root>/.pressluft-releases.json) (mode C(0640), owned by root,
    written atomically), outside C(releases/) and C(current), so nginx never serves it. It records
    C(current), C(previous), C(last_known_good) and, per release, a mark (C(building), C(healthy),
    C(failed) or C(rolled_back), the release states of the Pressluft control plane), its creation time
    and a reason. Files written before these names (marks C(unfinished) and C(unhealthy)) are read as
    C(building) and C(failed); the next change writes the new names.
  - The C(current) symlink is the truth about what is live. Release directories the file does not
    know (such as the first one C(pressluft.wordpress.wp_site) makes) are adopted as C(healthy);
    when the file is created, the release C(current) points at becomes the last known good.
  - Mark a release C(building) before its directory is created, so a build that stops half-way
    can never be switched to.
  - Checks the fencing token first, then takes an exclusive lock on the environment root, so two
    runs never interleave.
author:
  - Pressluft developers (@pressluft)
extends_documentation_fragment:
  - pressluft.wordpress.env
  - pressluft.wordpress.fencing
attributes:
  check_mode:
    description: Reports what would change, including the releases that would be removed, and changes nothing.
    support: full
  diff_mode:
    description:
      - Returns C(current), C(previous), C(last_known_good) and the marks before and after.
      - C(removed) lists the releases removed by O(state=pruned).
    support: full
  platform:
    description: POSIX nodes.
    support: full
    platforms: posix
options:
  root:
    description:
      - The environment tree; defaults to C(/var/www/sites/<site>/<env>).
      - It must exist. O(state=live), O(state=rollback) and O(state=pruned) work on its C(releases/)
        directory and its C(current) symlink.
    type: path
  release:
    description:
      - Name of a release directory in C(releases/) (1-64 letters, digits, dots, dashes and underscores,
        starting with a letter or digit, without C(..)).
      - Required with O(state=building), O(state=healthy), O(state=failed) and O(state=live).
      - With O(state=rollback), the release to roll back to (default C(previous)); with O(state=good),
        the release to record as last known good (default C(current)).
    type: str
  state:
    description:
      - V(building), V(healthy), V(failed) record the mark of O(release). The live release cannot
        be marked V(building).
      - V(live) atomically points C(current) at O(release) (temporary symlink renamed over it) and
        records the release it replaced as C(previous). Refused when the release directory does not
        exist or is marked V(building), V(failed) or V(rolled_back). Switching to the release that is
        already current changes nothing. Without a C(current) yet (first deploy) it creates it.
      - V(rollback) points C(current) at O(release) or, without it, at C(previous), which must exist and
        not be marked V(building), V(failed) or V(rolled_back). The release rolled back from is marked
        V(rolled_back) with O(reason) and becomes C(previous). Fails when there is no C(current) or no
        release to roll back to; rolling back to the release that is already current changes nothing.
      - V(good) records O(release) (default C(current)) as the last known good; it must exist and be
        marked V(healthy).
      - V(pruned) removes release directories so that O(keep) good releases remain; it never removes
        C(current), C(previous) or the last known good. Releases marked V(building), V(failed) or
        V(rolled_back) do not count toward O(keep) and are all removed. Entries of releases whose
        directory is gone are dropped from the state file.
    type: str
    choices: [building, healthy, failed, live, rollback, good, pruned]
    default: live
  reason:
    description:
      - Why a release got its mark, stored with it (such as the failed health check).
      - With O(state=rollback), stored with the V(rolled_back) mark of the release rolled back from
        (default C(rolled back to <release>)).
    type: str
  keep:
    description: With O(state=pruned), how many good releases to keep (at least 1).
    type: int
    default: 5
notes:
  - Do not prune while a release is being built in the same environment; it is marked V(building)
    and would be removed.
  - The Pressluft worker runs one mutation per site at a time; the lock on the environment root
    protects plain Ansible users too.
seealso:
  - module: pressluft.wordpress.wp_site
'''

EXAMPLES = r'''
- name: Mark the new release building before it is built
  pressluft.wordpress.release_switch:
    site: shop
    release: "20260102T030405"
    state: building
    fencing_token: "{{ pressluft_fencing_token | default(omit) }}"

- name: Pre-switch checks passed
  pressluft.wordpress.release_switch:
    site: shop
    release: "20260102T030405"
    state: healthy

- name: Switch current to the new release
  pressluft.wordpress.release_switch:
    site: shop
    release: "20260102T030405"
    state: live
  register: shop_switch

- name: Post-switch checks failed, go back to the release that was live before
  pressluft.wordpress.release_switch:
    site: shop
    release: "{{ shop_switch.previous }}"
    state: rollback
    reason: GET / answered 500

- name: Post-switch checks passed
  pressluft.wordpress.release_switch:
    site: shop
    state: good

- name: Keep three good releases
  pressluft.wordpress.release_switch:
    site: shop
    env: staging
    state: pruned
    keep: 3
'''

RETURN = r'''
current:
  description: The release C(current) points at after the task (null when there is none).
  returned: success
  type: str
  sample: "20260102T030405"
previous:
  description: The release that was current before the last switch or rollback.
  returned: success
  type: str
  sample: "20251224T100000"
last_known_good:
  description: The last release recorded as good.
  returned: success
  type: str
  sample: "20251224T100000"
release:
  description: The release the task acted on (the rollback target, the good one); null for O(state=pruned).
  returned: success
  type: str
  sample: "20260102T030405"
releases:
  description: Mark of every known release after the task.
  returned: success
  type: dict
  sample: {"20251224T100000": healthy, "20260102T030405": rolled_back}
removed:
  description: Releases removed (or, in check mode, to be removed) by O(state=pruned), oldest failed first.
  returned: success
  type: list
  elements: str
  sample: ["20251201T000000"]
root:
  description: The environment tree.
  returned: always
  type: str
  sample: /var/www/sites/shop/production
'''

import os

from ansible_collections.pressluft.wordpress.plugins.module_utils._env import env_module
from ansible_collections.pressluft.wordpress.plugins.module_utils._releases import (
    FAILED_MARKS,
    ReleaseError,
    Releases,
    validate_release,
)


def _switchable(rel, name, role):
    if not rel.exists(name):
        raise ReleaseError('%s release %s does not exist: no directory %s'
                           % (role, name, rel.release_dir(name)))
    mark = rel.mark(name)
    if mark in FAILED_MARKS:
        reason = rel.state['releases'][name].get('reason')
        raise ReleaseError('refusing to switch to %s release %s: it is marked %s%s'
                           % (role, name, mark, ' (%s)' % reason if reason else ''))


def _mark(module, rel, mark):
    name = module.params['release']
    if mark == 'building' and name == rel.state['current']:
        raise ReleaseError('release %s is current (live): it cannot be marked building' % name)
    rel.record(name, mark, module.params['reason'])
    return dict(release=name)


def _live(module, rel):
    name = module.params['release']
    _switchable(rel, name, 'the')
    if name == rel.state['current']:
        return dict(release=name)
    rel.state['previous'] = rel.state['current']
    rel.state['current'] = name
    return dict(release=name, switch=name)


def _rollback(module, rel):
    st = rel.state
    if st['current'] is None:
        raise ReleaseError('nothing to roll back: %s does not exist yet' % rel.current_link)
    name = module.params['release'] or st['previous']
    if name is None:
        raise ReleaseError('no previous release to roll back to from %s: name one with release'
                           % st['current'])
    if name == st['current']:
        return dict(release=name)
    _switchable(rel, name, 'the rollback' if module.params['release'] else 'the previous')
    rel.record(st['current'], 'rolled_back', module.params['reason'] or 'rolled back to %s' % name)
    if not module.check_mode:
        # The bad release is marked before the link moves: a retry after a crash never returns to it.
        rel.save()
    st['previous'], st['current'] = st['current'], name
    return dict(release=name, switch=name)


def _good(module, rel):
    name = module.params['release'] or rel.state['current']
    if name is None:
        raise ReleaseError('no current release to record as good: name one with release')
    if not rel.exists(name):
        raise ReleaseError('release %s does not exist: no directory %s' % (name, rel.release_dir(name)))
    if rel.mark(name) != 'healthy':
        raise ReleaseError('release %s is marked %s: only a healthy release can be the last known good'
                           % (name, rel.mark(name)))
    rel.state['last_known_good'] = name
    return dict(release=name)


def _pruned(module, rel):
    removed = rel.prune_plan(module.params['keep'])
    return dict(release=None, removed=removed, leftovers=rel.leftovers())


OPS = {
    'building': lambda m, r: _mark(m, r, 'building'),
    'healthy': lambda m, r: _mark(m, r, 'healthy'),
    'failed': lambda m, r: _mark(m, r, 'failed'),
    'live': _live,
    'rollback': _rollback,
    'good': _good,
    'pruned': _pruned,
}


def _view(state, removed):
    view = dict((k, state[k]) for k in ('current', 'previous', 'last_known_good'))
    view['releases'] = dict((n, info['mark']) for n, info in state['releases'].items())
    view['removed'] = list(removed)
    return view


def _apply(module, rel, plan):
    """Disk changes in crash-safe order: link or directories first, then the file that describes them."""
    if plan.get('switch'):
        rel.point_current(plan['switch'])
    # Leftovers first: one may carry the hidden name a removal is about to use.
    for hidden in plan.get('leftovers', []):
        module.run_command(['rm', '-rf', '--one-file-system', '--', os.path.join(rel.releases_dir, hidden)],
                           check_rc=True)
    for name in plan.get('removed', []):
        rel.remove(name, module.run_command)


def _check(p, names):
    if p['release'] is not None:
        validate_release(p['release'])
    if p['state'] == 'pruned' and p['keep'] < 1:
        raise ValueError('keep must be at least 1, got %d' % p['keep'])


def main():
    argument_spec = dict(
        root=dict(type='path'),
        release=dict(type='str'),
        state=dict(type='str', default='live', choices=list(OPS)),
        reason=dict(type='str'),
        keep=dict(type='int', default=5),
    )
    module, names = env_module(argument_spec, check=_check,
                               required_if=[('state', s, ['release'])
                                            for s in ('building', 'healthy', 'failed', 'live')])
    p = module.params

    rel = Releases(p['root'] or names['root'])
    result = dict(changed=False, root=rel.root)
    if not os.path.isdir(rel.root):
        module.fail_json(msg='%s does not exist: create the environment first (role site_env)' % rel.root,
                         **result)
    try:
        rel.lock(module.check_mode)
        rel.load()
    except (ReleaseError, OSError) as exc:
        module.fail_json(msg=str(exc), **result)
    before = _view(rel.state, [])
    result.update((k, v) for k, v in before.items() if k != 'removed')
    try:
        plan = OPS[p['state']](module, rel)
        removed = plan.get('removed', [])
        for name in removed:
            del rel.state['releases'][name]
        if p['state'] == 'pruned':
            rel.forget_missing()
        changed = bool(plan.get('switch') or removed or plan.get('leftovers') or rel.dirty())
        if changed and not module.check_mode:
            _apply(module, rel, plan)
            if rel.dirty():
                rel.save()
    except (ReleaseError, OSError) as exc:
        module.fail_json(msg=str(exc), **result)
    after = _view(rel.state, removed)
    result.update(after)
    result.update(changed=changed, release=plan.get('release'), diff=dict(before=before, after=after))
    module.exit_json(**result)


if __name__ == '__main__':
    main()

#!/usr/bin/python
# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: wp_update
short_description: Plan updates of WordPress core, plugins and themes, or build them into a new release
version_added: "1.0.0"
description:
  - O(state=planned) reads, without changing anything, what an update of the environment's live release
    would do - C(wp core check-update), C(wp plugin update --dry-run) and C(wp theme update --dry-run) with
    C(--format=json) as the environment user, or the versions in the given zips against the installed ones -
    and returns it as RV(updates). It runs in check mode too.
  - O(state=built) builds release O(release) from the live release with exactly the items of O(plan). The
    live tree is copied to C(releases/.build-<release>) and handed to the environment user; WP-CLI updates
    it there (C(--path) at the copy, C(--skip-plugins --skip-themes), so no plugin code runs while
    updating); the resulting versions must equal the plan. Only the updated components may differ from the
    live tree (anything else changed during the build fails it). The copy is then made root-owned and
    read-only for the PHP user and renamed to C(releases/<release>), like an unpacked deploy.
  - WordPress puts C(.maintenance) into the tree it updates, which is the copy and never the live release;
    it is removed before the rename, and a failed build removes the copy.
  - Any row with status C(Error) in WP-CLI's JSON fails the task, whatever WP-CLI's exit code.
  - The database is not touched here; C(wp core update-db) and the checks are the playbook's next steps.
author:
  - Pressluft developers (@pressluft)
extends_documentation_fragment:
  - pressluft.wordpress.attributes
  - pressluft.wordpress.env
  - pressluft.wordpress.fencing
  - pressluft.wordpress.wp_cli
attributes:
  check_mode:
    description: O(state=planned) always runs; O(state=built) reports a change without building.
    support: full
  diff_mode:
    support: none
  platform:
    description: Debian nodes with WP-CLI.
    platforms: debian
    support: full
options:
  state:
    description: Plan the update, or build the planned items into a new release.
    type: str
    choices: [planned, built]
    default: planned
  core:
    description: Plan a core update (O(core_zip) when given, else the newest release WP-CLI finds).
    type: bool
    default: false
  core_zip:
    description: A WordPress core zip on the node to update to (offline).
    type: path
  plugins:
    description: Plugin slugs to update from wordpress.org, or C(all).
    type: list
    elements: str
    default: []
  plugin_zips:
    description: Plugin zips on the node; each updates the installed plugin of the zip's top directory.
    type: list
    elements: path
    default: []
  themes:
    description: Theme slugs to update from wordpress.org, or C(all).
    type: list
    elements: str
    default: []
  theme_zips:
    description: Theme zips on the node.
    type: list
    elements: path
    default: []
  minor_only:
    description: Only minor and patch updates (C(1.3) to C(1.4), never C(2.0)).
    type: bool
    default: false
  exclude:
    description: Slugs never updated.
    type: list
    elements: str
    default: []
  release:
    description: Name of the release O(state=built) creates under C(releases/).
    type: str
  plan:
    description: The RV(updates) of O(state=planned); required with O(state=built).
    type: list
    elements: dict
    default: []
"""

EXAMPLES = r"""
- name: Plan the plugin updates of the shop
  pressluft.wordpress.wp_update:
    site: shop
    plugins: [all]
    minor_only: true
  register: plan

- name: Build them into a new release
  pressluft.wordpress.wp_update:
    site: shop
    state: built
    release: 20261206T120000Z-42
    plan: "{{ plan.updates }}"
    fencing_token: "{{ pressluft_fencing_token }}"
"""

RETURN = r"""
updates:
  description:
    - The planned (or, with O(state=built), applied) items.
    - Each has type, name, from, to and source (C(wordpress.org) or the zip).
  returned: always
  type: list
  elements: dict
  sample: [{type: plugin, name: akismet, from: "5.0", to: "5.1", source: wordpress.org}]
release:
  description: The release built (O(state=built)).
  returned: when state is built
  type: str
core_updated:
  description: Whether the build updated core (then the database may need C(wp core update-db)).
  returned: when state is built
  type: bool
"""

import os
import pwd
import shutil
import tempfile

from ansible_collections.pressluft.wordpress.plugins.module_utils._env import (
    WP_CLI_ARGSPEC,
    check_run_as,
    env_module,
)
from ansible_collections.pressluft.wordpress.plugins.module_utils._releases import validate_release
from ansible_collections.pressluft.wordpress.plugins.module_utils._wp_cli import WpCli, WpCliError
from ansible_collections.pressluft.wordpress.plugins.module_utils._wp_update import (
    KINDS,
    SLUG_RE,
    VERSION_RE,
    UpdateError,
    minor_key,
    tree_changes,
    tree_index,
    wp_json,
    zip_package,
)


class Site(object):
    def __init__(self, module, names):
        self.module, self.names, self.p = module, names, module.params
        self.entry = pwd.getpwnam(self.p["run_as"])

    def live(self):
        cur = self.names["current"]
        if not os.path.islink(cur):
            raise UpdateError("%s does not point at a release" % cur)
        return os.path.realpath(cur)

    def wp(self, path, args, what):
        return WpCli(self.module, self.p["run_as"], path, cwd=self.names["tmp"]).out(args, what=what)

    def installed(self, path, kind):
        rows = wp_json(
            self.wp(path, [kind, "list", "--format=json", "--fields=name,version"], "wp %s list" % kind),
            "wp %s list" % kind,
        )
        return dict((r["name"], str(r.get("version") or "")) for r in rows)

    def core_version(self, path):
        return self.wp(path, ["core", "version"], "wp core version").strip()


def _check(p, names):
    check_run_as(p, names)
    for key in ("plugins", "themes", "exclude"):
        bad = [s for s in p[key] if not isinstance(s, str) or not (SLUG_RE.match(s) or s == "all")]
        if bad:
            raise ValueError("%s: invalid slugs %s" % (key, ", ".join(repr(s)[:60] for s in bad)))
    if p["state"] == "built":
        if not p["release"]:
            raise ValueError("state=built needs release")
        validate_release(p["release"])
        for item in p["plan"]:
            if (
                item.get("type") not in KINDS
                or not SLUG_RE.match(str(item.get("name", "")))
                or not VERSION_RE.match(str(item.get("to", "")))
            ):
                raise ValueError("invalid plan item %r" % (item,))


def _item(kind, name, old, new, source):
    return dict(type=kind, name=name, **{"from": old, "to": new, "source": source})


def plan(site):
    p = site.p
    live = site.live()
    out = []
    exclude = set(p["exclude"])
    if p["core"]:
        old = site.core_version(live)
        if p["core_zip"]:
            _slug, new = zip_package(p["core_zip"], "core")
            if new != old and not (p["minor_only"] and minor_key(new) != minor_key(old)):  # core: 6.4.x only
                out.append(_item("core", "wordpress", old, new, p["core_zip"]))
        else:
            args = ["core", "check-update", "--format=json"] + (["--minor"] if p["minor_only"] else [])
            rows = wp_json(site.wp(live, args, "wp core check-update"), "wp core check-update")
            if rows:
                out.append(_item("core", "wordpress", old, str(rows[0]["version"]), "wordpress.org"))
    for kind, names, zips in (
        ("plugin", p["plugins"], p["plugin_zips"]),
        ("theme", p["themes"], p["theme_zips"]),
    ):
        if zips:
            have = site.installed(live, kind)
            for path in zips:
                slug, new = zip_package(path, kind)
                if slug in exclude:
                    continue
                if slug not in have:
                    raise UpdateError(
                        "%s %s (from %s) is not installed; updates do not install new %ss"
                        % (kind, slug, os.path.basename(path), kind)
                    )
                if new == have[slug] or (p["minor_only"] and minor_key(new)[:1] != minor_key(have[slug])[:1]):
                    continue
                out.append(_item(kind, slug, have[slug], new, path))
        if names:
            args = [kind, "update"] + (["--all"] if "all" in names else list(names))
            args += ["--dry-run", "--format=json"] + (["--minor"] if p["minor_only"] else [])
            if exclude:
                args.append("--exclude=%s" % ",".join(sorted(exclude)))
            zipped = set(o["name"] for o in out if o["type"] == kind)
            for row in wp_json(site.wp(live, args, "wp %s update --dry-run" % kind), "wp %s update" % kind):
                if row.get("name") not in zipped and row.get("update_version"):
                    out.append(
                        _item(
                            kind,
                            str(row["name"]),
                            str(row.get("version")),
                            str(row["update_version"]),
                            "wordpress.org",
                        )
                    )
    return out


def _user_copy(site, src, work):
    """A copy of a zip the environment user can read (WP-CLI runs as that user)."""
    dest = os.path.join(work, os.path.basename(src))
    shutil.copyfile(src, dest)
    os.chown(dest, site.entry.pw_uid, site.entry.pw_gid)
    os.chmod(dest, 0o600)
    return dest


def _apply(site, build, items, work):
    zipped = [i for i in items if i["source"] != "wordpress.org"]
    for kind in KINDS:
        # All zips of a kind in one WP-CLI run (WordPress loads once); WP-CLI exits non-zero when any fails.
        paths = [_user_copy(site, i["source"], work) for i in zipped if i["type"] == kind]
        if paths:
            args = [kind, "install", *paths, "--force"]
            if kind == "core":
                args = ["core", "update", paths[0], "--force"]
            site.wp(build, args, "wp %s from %d zip(s)" % (" ".join(args[:2]), len(paths)))
    for item in items:
        if item["source"] != "wordpress.org":
            continue
        if item["type"] == "core":
            site.wp(build, ["core", "update", "--version=%s" % item["to"]], "wp core update")
            continue
        # One WP-CLI run per item pins its version: exactly what was planned (and tested) is applied.
        kind, name = item["type"], item["name"]
        out = site.wp(build, [kind, "update", name, "--version=%s" % item["to"], "--format=json"],
                      "wp %s update %s" % (kind, name))
        wp_json(out, "wp %s update %s" % (kind, name))


def _verify(site, build, items):
    got = {"core": {"wordpress": site.core_version(build)} if any(i["type"] == "core" for i in items) else {}}
    for kind in ("plugin", "theme"):
        if any(i["type"] == kind for i in items):
            got[kind] = site.installed(build, kind)
    wrong = [
        "%s %s is %s, not %s" % (i["type"], i["name"], got[i["type"]].get(i["name"]), i["to"])
        for i in items
        if got[i["type"]].get(i["name"]) != i["to"]
    ]
    if wrong:
        raise UpdateError("the build does not hold the planned versions: %s" % "; ".join(wrong))


def _owned_by(module, path, owner):
    module.run_command(["chown", "-R", "-h", owner, path], check_rc=True)


def build(site):
    p, module = site.p, site.module
    items = p["plan"]
    final = os.path.join(site.names["releases"], p["release"])
    result = dict(
        changed=False,
        release=p["release"],
        updates=items,
        core_updated=any(i["type"] == "core" for i in items),
    )
    if os.path.isdir(final):  # a retried job: releases are immutable, the checks after this verify it
        return result
    result["changed"] = True
    if module.check_mode:
        return result
    live = site.live()
    tmp = os.path.join(site.names["releases"], ".build-%s" % p["release"])
    if os.path.lexists(tmp):
        shutil.rmtree(tmp)
    work = tempfile.mkdtemp(prefix=".pressluft-update-", dir=site.names["tmp"])
    os.chown(work, site.entry.pw_uid, site.entry.pw_gid)
    try:
        module.run_command(["cp", "-a", "--", live, tmp], check_rc=True)
        # What may change: the updated components, WordPress's scratch space and its maintenance flag.
        skip = [
            ".maintenance",
            os.path.join("wp-content", "upgrade"),
            os.path.join("wp-content", "upgrade-temp-backup"),
        ]
        skip += [os.path.join("wp-content", i["type"] + "s", i["name"]) for i in items if i["type"] != "core"]
        watched = os.path.join("wp-content", "plugins") if result["core_updated"] else ""
        before = tree_index(
            os.path.join(tmp, watched),
            skip
            if not watched
            else [os.path.relpath(s, watched) for s in skip if s.startswith(watched + os.sep)],
        )
        _owned_by(module, tmp, "%s:%s" % (site.entry.pw_uid, site.entry.pw_gid))
        _apply(site, tmp, items, work)
        _verify(site, tmp, items)
        for leftover in skip[:3]:
            path = os.path.join(tmp, leftover)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            elif os.path.lexists(path):
                os.unlink(path)
        after = tree_index(
            os.path.join(tmp, watched),
            skip
            if not watched
            else [os.path.relpath(s, watched) for s in skip if s.startswith(watched + os.sep)],
        )
        changed = tree_changes(before, after)
        if changed:
            raise UpdateError(
                "files outside the updated components changed during the build: %s" % ", ".join(changed[:10])
            )
        _owned_by(module, tmp, "root:root")
        module.run_command(["chmod", "-R", "u=rwX,go=rX", tmp], check_rc=True)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result


def main():
    spec = dict(
        state=dict(type="str", choices=["planned", "built"], default="planned"),
        core=dict(type="bool", default=False),
        core_zip=dict(type="path"),
        plugins=dict(type="list", elements="str", default=[]),
        plugin_zips=dict(type="list", elements="path", default=[]),
        themes=dict(type="list", elements="str", default=[]),
        theme_zips=dict(type="list", elements="path", default=[]),
        minor_only=dict(type="bool", default=False),
        exclude=dict(type="list", elements="str", default=[]),
        release=dict(type="str"),
        plan=dict(type="list", elements="dict", default=[]),
    )
    spec.update(WP_CLI_ARGSPEC)
    module, names = env_module(spec, check=_check)
    try:
        site = Site(module, names)
        if module.params["state"] == "planned":
            module.exit_json(changed=False, updates=plan(site))
        module.exit_json(**build(site))
    except (UpdateError, WpCliError, KeyError) as exc:
        module.fail_json(msg=str(exc))


if __name__ == "__main__":
    main()

#!/usr/bin/python
# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: env_compare
short_description: Compare an environment with another over a set of URLs (the safe update's report)
version_added: "1.0.0"
description:
  - Requests the same paths from O(env) (the updated clone) and O(against) (production) through the node's
    nginx with each environment's own host name, and reports per path both status codes, the changed
    fraction of a normalised HTML diff and its first lines, and, for the whole run, the PHP errors O(env)'s
    pool logged.
  - The paths are the home page, a sample of O(sitemap_sample) URLs from production's C(/wp-sitemap.xml)
    (only URLs of O(against_host) are taken), C(/wp-json/), the login page and the feed.
  - Normalisation strips what differs between two renders of one page - nonces, C(ver=) query strings,
    dates and Unix timestamps - and writes both environments' URLs as one placeholder; the page is diffed
    tag by tag. A path passes when both statuses are equal, the clone's is below 500 and the changed
    fraction is at most that kind's O(max_diff).
  - The run fails (RV(passed) false, the task itself succeeds) on any failing path or any PHP fatal or
    parse error in O(env)'s error log after O(log_offset).
  - Read-only.
author:
  - Pressluft developers (@pressluft)
extends_documentation_fragment:
  - pressluft.wordpress.attributes
  - pressluft.wordpress.env
attributes:
  check_mode:
    description: Read-only; runs in check mode as well.
    support: full
  diff_mode:
    support: none
  platform:
    description: Nodes running the environments' nginx.
    platforms: posix
    support: full
options:
  host:
    description: Host name O(env) answers to (its preview domain).
    type: str
    required: true
  against:
    description: The environment compared with, production by default.
    type: str
    default: production
  against_host:
    description: Host name O(against) answers to (its canonical domain).
    type: str
    required: true
  against_scheme:
    description: V(https) when O(against_host) is served with a certificate (its port 80 redirects).
    type: str
    choices: [http, https]
    default: http
  address:
    description: Address nginx listens on.
    type: str
    default: 127.0.0.1
  sitemap_sample:
    description: How many URLs to take from production's sitemap (0 to skip it).
    type: int
    default: 3
  max_diff:
    description:
      - Highest changed fraction (0-1) of the normalised page per kind of path - C(home), C(sitemap),
        C(rest), C(login), C(feed); missing kinds keep their default.
    type: dict
    default: {}
  log_offset:
    description: Byte offset of O(env)'s PHP error log from which errors count (default its size at start).
    type: int
  timeout:
    description: Seconds for each request.
    type: float
    default: 30
"""

EXAMPLES = r"""
- name: Compare the updated clone with production
  pressluft.wordpress.env_compare:
    site: shop
    env: safe42
    host: safe42.shop.localhost
    against_host: shop.example.com
    against_scheme: https
    max_diff: {home: 0.02}
  register: compare
"""

RETURN = r"""
passed:
  description: Whether every path passed and the clone logged no PHP fatal error.
  returned: always
  type: bool
reason:
  description: Why it did not pass (empty when it did).
  returned: always
  type: str
  sample: "/: 2 lines changed (0.031 > 0.01)"
urls:
  description: One entry per path.
  returned: always
  type: list
  elements: dict
  sample: [{path: /, kind: home, status: 200, clone_status: 200, changed: 0.0, max_diff: 0.01, ok: true,
            reason: "", diff: []}]
php_errors:
  description: PHP error lines the clone's pool logged during the run (at most 20) and their counts by kind.
  returned: always
  type: dict
  sample: {lines: ["PHP Fatal error: ..."], counts: {"Fatal error": 1}}
"""

import http.client as http_client
import os
import socket
import ssl

from ansible_collections.pressluft.wordpress.plugins.module_utils._compare import (
    FATAL_KINDS,
    compare,
    normalise,
    on_host,
    php_errors,
    sitemap_locs,
)
from ansible_collections.pressluft.wordpress.plugins.module_utils._env import env_module
from ansible_collections.pressluft.wordpress.plugins.module_utils._names import env_names

MAX_DIFF = dict(home=0.01, sitemap=0.01, rest=0.1, login=0.02, feed=0.02)
FIXED = [("/", "home"), ("/wp-json/", "rest"), ("/wp-login.php", "login"), ("/feed/", "feed")]
MAX_BODY = 8 * 1024 * 1024
HOST_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789.-")


def fetch(p, host, scheme, path):
    """(status, text) of GET path from the node's nginx with Host: host; status 0 when nothing answered."""
    try:
        if scheme == "https":
            ctx = ssl.create_default_context()
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # our own nginx on this node
            conn = http_client.HTTPSConnection(p["address"], 443, timeout=p["timeout"], context=ctx)
        else:
            conn = http_client.HTTPConnection(p["address"], 80, timeout=p["timeout"])
        try:
            conn.request("GET", path, headers={"Host": host, "User-Agent": "pressluft-compare"})
            resp = conn.getresponse()
            return resp.status, resp.read(MAX_BODY).decode("utf-8", "replace")
        finally:
            conn.close()
    except (IOError, OSError, socket.error, http_client.HTTPException, ValueError) as exc:
        return 0, "no answer: %s" % exc


def sitemap_sample(p):
    """Up to sitemap_sample paths of production's sitemap, on its host only, evenly spread."""
    if p["sitemap_sample"] <= 0:
        return []
    status, text = fetch(p, p["against_host"], p["against_scheme"], "/wp-sitemap.xml")
    if status != 200:
        return []
    locs = sitemap_locs(text)
    # A sitemap index lists sitemaps: read the first one of this host.
    subs = [on_host(u, p["against_host"]) for u in locs if u.rstrip("/").endswith(".xml")]
    subs = [s for s in subs if s]
    if subs:
        status, text = fetch(p, p["against_host"], p["against_scheme"], subs[0])
        locs = sitemap_locs(text) if status == 200 else []
    paths = []
    for url in locs:
        path = on_host(url, p["against_host"])
        if path and path not in paths and path not in [f[0] for f in FIXED]:
            paths.append(path)
    step = max(1, len(paths) // p["sitemap_sample"])
    return paths[::step][: p["sitemap_sample"]]


def log_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def read_from(path, offset):
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(offset if offset <= size else 0)
            return f.read(MAX_BODY).decode("utf-8", "replace")
    except (IOError, OSError):
        return ""


def _check(p, names):
    for key in ("host", "against_host"):
        if not p[key] or set(p[key].lower()) - HOST_CHARS or len(p[key]) > 253:
            raise ValueError("%s must be a host name" % key)
    env_names(p["site"], p["against"])  # a valid environment name
    if p["against"] == p["env"]:
        raise ValueError("an environment cannot be compared with itself")
    if not 0 <= p["sitemap_sample"] <= 20:
        raise ValueError("sitemap_sample must be 0-20")
    for kind, value in p["max_diff"].items():
        if kind not in MAX_DIFF:
            raise ValueError("max_diff: unknown kind %r (%s)" % (kind, ", ".join(sorted(MAX_DIFF))))
        try:
            fraction = float(value)
        except (TypeError, ValueError):
            fraction = -1.0
        if not 0 <= fraction <= 1:
            raise ValueError("max_diff %s must be a fraction 0-1" % kind)
    if p["log_offset"] is not None and p["log_offset"] < 0:
        raise ValueError("log_offset must not be negative")


def main():
    module, names = env_module(
        dict(
            host=dict(type="str", required=True),
            against=dict(type="str", default="production"),
            against_host=dict(type="str", required=True),
            against_scheme=dict(type="str", choices=["http", "https"], default="http"),
            address=dict(type="str", default="127.0.0.1"),
            sitemap_sample=dict(type="int", default=3),
            max_diff=dict(type="dict", default={}),
            log_offset=dict(type="int"),
            timeout=dict(type="float", default=30),
        ),
        check=_check,
        fencing=False,
    )
    p = module.params
    limits = dict(MAX_DIFF, **dict((k, float(v)) for k, v in p["max_diff"].items()))
    error_log = os.path.join(names["logs"], "php-error.log")
    offset = p["log_offset"] if p["log_offset"] is not None else log_size(error_log)
    hosts = [p["host"], p["against_host"]]
    paths = FIXED[:1] + [(s, "sitemap") for s in sitemap_sample(p)] + FIXED[1:]
    urls, reasons = [], []
    for path, kind in paths:
        status, before = fetch(p, p["against_host"], p["against_scheme"], path)
        clone_status, after = fetch(p, p["host"], "http", path)
        changed, diff = compare(normalise(before, hosts), normalise(after, hosts))
        why = []
        if clone_status != status:
            why.append("HTTP %d on the clone, %d on %s" % (clone_status, status, p["against"]))
        elif clone_status >= 500 or clone_status == 0:
            why.append("HTTP %d on both" % clone_status)
        if changed > limits[kind]:
            why.append("%.1f%% of the page changed (at most %.1f%%)" % (changed * 100, limits[kind] * 100))
        reason = "%s: %s" % (path, ", ".join(why)) if why else ""
        if reason:
            reasons.append(reason)
        urls.append(dict(path=path, kind=kind, status=status, clone_status=clone_status, changed=changed,
                         max_diff=limits[kind], ok=not why, reason=reason, diff=diff))
    lines, counts = php_errors(read_from(error_log, offset))
    fatals = sum(counts.get(k, 0) for k in FATAL_KINDS)
    if fatals:
        reasons.append("%d PHP fatal error(s) on the clone: %s" % (
            fatals, next((line for line in lines if any(k in line for k in FATAL_KINDS)), "")[-300:]))
    module.exit_json(changed=False, passed=not reasons, reason="; ".join(reasons)[:2000], urls=urls,
                     php_errors=dict(lines=lines, counts=counts))


if __name__ == "__main__":
    main()

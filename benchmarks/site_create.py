"""site_create benchmarks on one provisioned podman node (issue 3). Prints its figures.

1. site_create (ansible-playbook, pipelining) vs benchmarks/site_env.sh (the same steps as a minimal
   shell script over one SSH session) on the same node: ratio, target <= 3. Also the same site_create again
   on the same site (nothing to do, changed=0): what Ansible's tasks cost before any work is done.
2. site_create with 100 sites already on the node vs with none: ratio, target <= 1.15. Two nodes,
   provisioned together: node A keeps only the few sites of figure 1, node B is filled to 100 sites,
   then site_create alternates between B and A, so a change of the host's load hits both sides.
3. Idle memory per site with 100 sites on node B (the PSS of all processes on the node, after every site
   served one request and its ondemand workers idled out; RSS printed too): target <= 2 MB/site.
4. Reload times on both nodes (issue 21): `php-fpm -t`, an FPM reload until the master logs
   "ready to handle connections", `nginx -t`, an nginx reload until the master runs new workers;
   target <= 1 s each at 1,000 sites. The fill's time and the host's load before/during are printed.

    .venv/bin/python -m benchmarks.site_create [--sites 100] [--samples 3] [--ratio-only]
    .venv/bin/python -m benchmarks.site_create --sites 1000 --samples 3   # issue 21's documented run

The fill past the first site hard-links WordPress core from the first filled site's release
(site_env.sh CORE_FROM): 1,000 extracted copies would take ~60 GB of a shared disk.

ansible-playbook runs with the settings the product's runner
(pressluft_lib/execution/ansible_exec.py) gives it:
pipelining on, Ansible's default ssh_args (ControlMaster=auto, ControlPersist=60s), no fact gathering
(the playbook's own setting); tests/rig/ansible.py adds only its JSON stdout callback (the runner uses
ansible-runner's event callback instead) and host key checking off for throwaway nodes.
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.rig import nodes as rig  # noqa: E402
from tests.rig import wpcli  # noqa: E402
from tests.rig.ansible import run_playbook  # noqa: E402
from tests.rig.wordpress import wordpress_archive  # noqa: E402

SCRIPT = ROOT / "benchmarks" / "site_env.sh"


def ansible_site(node, tmp, site: str, archive: Path, changed: int | None = None) -> float:
    t0 = time.monotonic()
    r = run_playbook("site_create.yml", rig.inventory([node]), tmp, extravars={
        "pressluft_target": "nodes", "pressluft_site": site, "pressluft_wordpress_src": str(archive)})
    elapsed = time.monotonic() - t0
    if r.rc != 0:
        raise SystemExit(f"site_create {site} failed:\n{r.explain()}")
    if changed is not None and r.changed != changed:
        raise SystemExit(f"site_create {site} again changed {r.changed_tasks()}, expected {changed} changes")
    return elapsed


def ssh(node, *cmd: str, input: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["ssh", "-i", str(node.key_file), "-p", str(node.ssh_port), "-o", "BatchMode=yes",
                           "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                           "-o", "LogLevel=ERROR", f"{rig.SSH_USER}@127.0.0.1", *cmd],
                          input=input, capture_output=True, check=True, timeout=600)


def shell_site(node, site: str, *extra: str) -> float:
    t0 = time.monotonic()
    ssh(node, "sudo", "bash", "-s", "--", site, *extra, input=SCRIPT.read_bytes())
    return time.monotonic() - t0


RELOAD_TIMES = r"""
import glob, json, os, subprocess, time

def run(*argv):
    t0 = time.monotonic()
    subprocess.run(argv, check=True, capture_output=True)
    return time.monotonic() - t0

def fpm_reload():
    log = "/var/log/php8.2-fpm.log"
    offset = os.path.getsize(log)
    t0 = time.monotonic()
    subprocess.run(["systemctl", "reload", "php8.2-fpm"], check=True)
    while True:
        with open(log, "rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", "replace")
        if "ready to handle connections" in text:
            return time.monotonic() - t0
        if "FPM initialization failed" in text:
            raise SystemExit("FPM did not come back: " + text[-500:])
        if time.monotonic() - t0 > 120:
            raise SystemExit("FPM not ready after 120 s")
        time.sleep(0.005)

def workers():
    master = open("/run/nginx.pid").read().strip()
    out = subprocess.run(["pgrep", "-P", master], capture_output=True, text=True).stdout
    return set(out.split())

def nginx_reload():
    old = workers()
    t0 = time.monotonic()
    subprocess.run(["systemctl", "reload", "nginx"], check=True)
    while not (workers() - old):
        if time.monotonic() - t0 > 120:
            raise SystemExit("nginx started no new worker within 120 s")
        time.sleep(0.005)
    return time.monotonic() - t0

pools = len(glob.glob("/etc/php/8.2/fpm/pool.d/*.conf"))
print(json.dumps({"pools": pools, "fpm_test": run("php-fpm8.2", "-t"), "fpm_reload": fpm_reload(),
                  "nginx_test": run("nginx", "-t", "-q"), "nginx_reload": nginx_reload()}))
"""


def reload_times(node) -> dict[str, float]:
    """Medians of three rounds of the reload probe run on the node as root."""
    import json
    rounds = [json.loads(ssh(node, "sudo", "python3", "-", input=RELOAD_TIMES.encode()).stdout)
              for _ in range(3)]
    return {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def memory_by_command(node) -> dict[str, tuple[float, float]]:
    """(RSS, PSS) in MB of every process on the node, summed by command name.

    Read on the host (/proc/<host pid>/smaps_rollup): inside the node, root lacks CAP_SYS_PTRACE and cannot
    read other users' smaps. PSS splits a page shared by n processes n ways; an RSS sum counts it n times
    (nginx's configuration, copied on write into every worker: three times with two workers).
    """
    sums: dict[str, tuple[float, float]] = {}
    out = subprocess.run(["podman", "top", node.name, "hpid", "comm"], capture_output=True, text=True,
                         check=True).stdout
    for line in out.splitlines()[1:]:
        hpid, _, comm = line.strip().partition(" ")
        try:
            rollup = Path(f"/proc/{hpid}/smaps_rollup").read_text()
        except FileNotFoundError:  # exited meanwhile
            continue
        kb = {k: int(v.split()[0]) for k, v in (row.split(":", 1) for row in rollup.splitlines()[1:])}
        rss, pss = sums.get(comm.strip(), (0.0, 0.0))
        sums[comm.strip()] = (rss + kb["Rss"] / 1024, pss + kb["Pss"] / 1024)
    return sums


def idle_memory(node, sites: list[str]) -> dict[str, tuple[float, float]]:
    """memory_by_command once every site served one request and its ondemand workers idled out (10 s)."""
    for s in sites:
        conn = http.client.HTTPConnection("127.0.0.1", node.http_port, timeout=30)
        conn.request("GET", "/", headers={"Host": f"{s}.localhost"})
        status = conn.getresponse().status
        conn.close()
        if status != 200:
            raise SystemExit(f"{s}.localhost answered {status}")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        workers = node.sh("pgrep -c -f 'php-fpm: pool' || true").strip()
        if workers in ("", "0"):
            break
        time.sleep(1)
    return memory_by_command(node)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sites", type=int, default=100)
    ap.add_argument("--samples", type=int, default=3)
    ap.add_argument("--ratio-only", action="store_true", help="figure 1 only (one node, no 100-site fill)")
    args = ap.parse_args(argv)
    tmp = Path(subprocess.run(["mktemp", "-d", "/tmp/pressluft-bench.XXXXXX"], capture_output=True, text=True,
                              check=True).stdout.strip())
    archive = wordpress_archive()
    started = []
    try:
        node = rig.start_node(tmp)
        started.append(node)
        full_node = None if args.ratio_only else rig.start_node(tmp)
        started += [full_node] if full_node else []
        t0 = time.monotonic()
        prov = run_playbook("node_provision.yml", rig.inventory(started), tmp, extravars={
            "pressluft_target": "nodes", "pressluft_hardening_enabled": False, **wpcli.extravars()})
        if prov.rc != 0:
            raise SystemExit(f"node_provision failed:\n{prov.explain()}")
        print(f"node_provision ({len(started)} node(s) at once): {time.monotonic() - t0:.1f} s")
        for n_ in started:
            ansible_site(n_, tmp, "warmup", archive)  # copies the archive into the node's cache

        n = args.samples
        t_none, t_again, t_shell, loads = [], [], [], []
        # Triples on one node, so a load change on the host hits every side: site_create of a new site, the
        # same site_create again (nothing left to do: Ansible's floor for these tasks), the script.
        for i in range(n + 1):
            loads.append(os.getloadavg()[0])
            t_none.append(ansible_site(node, tmp, f"first{i}", archive))
            t_again.append(ansible_site(node, tmp, f"first{i}", archive, changed=0))
            t_shell.append(shell_site(node, f"shell{i}"))
        a, f, s = statistics.median(t_none), statistics.median(t_again), statistics.median(t_shell)
        print(f"site_create, ansible-playbook: median {a:.2f} s of {[round(x, 2) for x in t_none]}")
        print(f"same run again, nothing to do: median {f:.2f} s of {[round(x, 2) for x in t_again]}")
        print(f"same steps, shell script:      median {s:.2f} s of {[round(x, 2) for x in t_shell]}")
        print(f"ratio ansible / shell: {a / s:.2f} (target <= 3); nothing to do / shell: {f / s:.2f}; "
              f"host load (1 min) before each triple: {[round(x, 1) for x in loads]}")
        if full_node is None:
            return 0
        base_by = idle_memory(full_node, ["warmup"])

        fill = [f"fill{i:04d}" for i in range(args.sites - 1)]
        t0 = time.monotonic()
        print(f"host load (1/5/15 min) before the fill: {load()}", flush=True)
        core = None
        for i, site in enumerate(fill):
            if core:
                ssh(full_node, "sudo", "env", f"CORE_FROM={core}", "bash", "-s", "--", site,
                    "noreload" if i < len(fill) - 1 else "", input=SCRIPT.read_bytes())
            else:
                shell_site(full_node, site, "noreload")
                core = f"/var/www/sites/{site}/production/releases/6.1.9"
            if i and i % 100 == 0:
                print(f"  {i} sites filled, {time.monotonic() - t0:.0f} s, load {load()}", flush=True)
        print(f"filled node B with {len(fill)} more sites by script in {time.monotonic() - t0:.0f} s "
              f"({len(fill) + 1} sites on it); load after the fill {load()}", flush=True)
        for label, n_ in (("node A (few sites)", node), (f"node B ({len(fill) + 1} sites)", full_node)):
            r = reload_times(n_)
            print(f"reload times, {label}, {r['pools']:.0f} pool files: php-fpm -t {r['fpm_test']:.2f} s, "
                  f"FPM reload {r['fpm_reload']:.2f} s, nginx -t {r['nginx_test']:.2f} s, nginx reload "
                  f"{r['nginx_reload']:.2f} s (target <= 1 s at 1,000); load {load()}", flush=True)
        t_full, t_few = [], []
        for i in range(n):
            t_full.append(ansible_site(full_node, tmp, f"last{i}", archive))
            t_few.append(ansible_site(node, tmp, f"few{i}", archive))
        b, c = statistics.median(t_full), statistics.median(t_few)
        print(f"site_create with {len(fill) + 1} sites present: median {b:.2f} s of "
              f"{[round(x, 2) for x in t_full]}")
        print(f"alternating, node A ({2 * (n + 1) + 1}+ sites): median {c:.2f} s of "
              f"{[round(x, 2) for x in t_few]}")
        print(f"ratio {args.sites} sites / none: {b / c:.2f} (target <= 1.15); load {load()}", flush=True)

        sites = ["warmup"] + fill + [f"last{i}" for i in range(n)]
        full_by = idle_memory(full_node, sites)
        growth = sorted(((full_by.get(c, (0, 0))[1] - base_by.get(c, (0, 0))[1], c)
                         for c in set(full_by) | set(base_by)), reverse=True)[:4]
        print("largest growth (PSS): " + ", ".join(f"{c} +{mb:.0f} MB" for mb, c in growth))
        for label, i in (("PSS", 1), ("RSS", 0)):
            base, full = (sum(m[i] for m in by.values()) for by in (base_by, full_by))
            per = (full - base) / (len(sites) - 1)
            print(f"idle {label} on node B: {base:.0f} MB with 1 site, {full:.0f} MB with {len(sites)} "
                  f"sites: {per:.2f} MB/site" + (" (target <= 2)" if i else ""))
    finally:
        rig.stop_nodes(started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

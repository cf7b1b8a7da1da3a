"""`ansible-inventory --list` over 1,000 nodes / 20,000 environments: the pressluft inventory plugin
against the same data as a static YAML inventory, in one run.

    .venv/bin/python -m benchmarks.inventory_scale [--nodes 1000] [--envs-per-node 20] [--repeat 3]

Prints the median wall time of each and their ratio (plugin / static; target <= 1.0).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from sqlalchemy import insert

from pressluft_lib.storage import db
from pressluft_lib.storage.models import Domain, Environment, Node, Site, utcnow

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def plugin_module():
    spec = importlib.util.spec_from_file_location(
        "pressluft_inventory", ROOT / "plugins/inventory/pressluft.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def populate(url: str, nodes: int, per_node: int) -> None:
    now = utcnow()
    common = {"created_at": now, "updated_at": now}
    engine = db.make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            insert(Node),
            [
                {
                    "id": i,
                    "name": f"node{i:04d}",
                    "host": f"10.{i // 250}.{i % 250}.1",
                    "port": 22,
                    "user": "pressluft",
                    "ssh_key_path": "/etc/pressluft/id_ed25519",
                    "local": False,
                    "provider": ("hcloud", "static")[i % 2],
                    "roles": ["web", "db", "cache"],
                    "state": "active",
                    **common,
                }
                for i in range(1, nodes + 1)
            ],
        )
        conn.execute(
            insert(Site),
            [
                {
                    "id": i,
                    "name": f"site{i:05d}",
                    "node_id": (i - 1) // per_node + 1,
                    "state": "active",
                    "last_fencing_token": 1,
                    "php_version": ("8.2", "8.3")[i % 2],
                    **common,
                }
                for i in range(1, nodes * per_node + 1)
            ],
        )
        conn.execute(
            insert(Environment),
            [
                {"id": i, "site_id": i, "name": "production", "state": "active", **common}
                for i in range(1, nodes * per_node + 1)
            ],
        )
        conn.execute(
            insert(Domain),
            [
                {"env_id": i, "name": f"site{i:05d}.example.com", "state": "active", **common}
                for i in range(1, nodes * per_node + 1)
            ],
        )
    engine.dispose()


def static_inventory(url: str, path: Path) -> None:
    """The plugin's own host list written as a plain YAML inventory (same hosts, vars and groups)."""
    mod = plugin_module()
    hosts = mod.build_hosts(*mod.fetch_rows(url), include_states=[])
    groups: dict[str, dict] = {"pressluft": {"hosts": {}}}
    for h in hosts:
        groups["pressluft"]["hosts"][h["name"]] = h["vars"]
        for g in h["groups"]:
            groups.setdefault(g, {"hosts": {}})["hosts"][h["name"]] = None
    with path.open("w") as f:
        yaml.dump({"all": {"children": groups}}, f, Dumper=yaml.CSafeDumper, default_flow_style=False)


def timed(inventory: Path, env: dict) -> float:
    start = time.perf_counter()
    proc = subprocess.run(
        [str(BIN / "ansible-inventory"), "-i", str(inventory), "--list"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"ansible-inventory failed on {inventory}:\n{proc.stderr[-2000:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--envs-per-node", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from tests.rig.ansible import collections_path

    with tempfile.TemporaryDirectory(prefix="inventory-scale-") as tmp:
        work = Path(tmp)
        url = f"sqlite:///{work / 'cp.db'}"
        db.upgrade(url)
        populate(url, args.nodes, args.envs_per_node)
        plugin_cfg = work / "bench.pressluft.yml"
        plugin_cfg.write_text(f"plugin: pressluft.wordpress.pressluft\ndb_url: {url}\n")
        static = work / "static.yml"
        static_inventory(url, static)
        env = {
            **os.environ,
            "ANSIBLE_COLLECTIONS_PATH": str(collections_path()),
            "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
        }
        env.pop("PRESSLUFT_DB", None)
        plugin_t, static_t = [], []
        for _ in range(args.repeat):  # interleaved so both see the same machine load
            plugin_t.append(timed(plugin_cfg, env))
            static_t.append(timed(static, env))
        p, s = statistics.median(plugin_t), statistics.median(static_t)
        envs = args.nodes * args.envs_per_node
        print(f"ansible-inventory --list, {args.nodes} nodes / {envs} environments, median of {args.repeat}:")
        print(f"  plugin (SQLite)     {p:7.2f} s   runs: {', '.join(f'{t:.2f}' for t in plugin_t)}")
        print(
            f"  static YAML ({static.stat().st_size // 1024} KiB) {s:7.2f} s   "
            f"runs: {', '.join(f'{t:.2f}' for t in static_t)}"
        )
        print(f"  ratio plugin/static {p / s:7.2f}   (target <= 1.0)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

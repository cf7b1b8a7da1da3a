"""A node image with playbooks/node_provision.yml applied, built once per recipe hash.

Provisioning a fresh node costs 1.5-4 minutes; integration tests that need a provisioned node (and
do not test provisioning itself) start from this image instead. It is built by running the real
playbook against a started rig node, shutting that node down cleanly (systemd stops MariaDB and
the rest) and `podman commit`-ing it. The tag is a hash of everything that affects the result:
the node image, the playbook and every role, module, module_util and filter it reaches, the
variables and clean-up steps below, the WP-CLI file and ansible-core's version. A change to any of
them builds a new image, so a stale one is never used.

Not baked (per node): the SSH host keys (regenerated at boot by a drop-in for ssh.service), the
authorized keys (the rig installs each node's own), the machine id (each node gets its own file)
and the node name in /etc/pressluft/node.yml (rewritten to the node's name at start). Baked and
shared by every node of one image: what the roles generate once, e.g. the Redis admin password.

`python -m tests.rig.provisioned` builds the image when missing and prints its tag
(scripts/setup --tests runs it).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import re
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from tests.rig import nodes as rig
from tests.rig import wpcli
from tests.rig.ansible import ROOT, run_playbook

REPO = "localhost/pressluft-provisioned"
PLAYBOOK = ROOT / "playbooks" / "node_provision.yml"
# The inventory name of the node the image is built from, written into /etc/pressluft/node.yml.
BUILD_NAME = "pressluft-provisioned-image"
# Hardening is tested on fresh nodes (test_node_hardening.py); provisioned test nodes go without it.
VARS = {"pressluft_hardening_enabled": False}  # + the WP-CLI phar (tests/rig/wpcli.py)
SERVICES = ("nginx", "php8.2-fpm", "mariadb", "redis-server", "ssh")
LOCK = Path("/var/tmp/pressluft-provisioned.lock")
KEEP_OLD_S = 3 * 3600  # images of other recipes (other worktrees) younger than this are kept
# ssh.service runs `sshd -t` before sshd: host keys must exist before that.
HOSTKEYS_DROPIN = ("[Service]\nExecStartPre=\nExecStartPre=/usr/bin/ssh-keygen -A\n"
                   "ExecStartPre=/usr/sbin/sshd -t\n")
# What is taken out of the node before the commit (see the module's docstring).
CLEANUP = (
    "set -e; rm -f /home/pressluft/.ssh/authorized_keys /etc/ssh/ssh_host_*; "
    "install -d /etc/systemd/system/ssh.service.d; "
    "rm -rf /root/.ansible /home/pressluft/.ansible /tmp/* /var/tmp/*; apt-get clean; "
    ": >/etc/machine-id; "
    # A node's machine id is a bind-mounted file (start()), which this unit would try to commit.
    "systemctl mask systemd-machine-id-commit.service"
)
_FQCN = re.compile(r"pressluft\.wordpress\.(\w+)")
_ROLE = re.compile(r"^\s*-?\s*(?:role|name):\s*['\"]?(?:pressluft\.wordpress\.)?(\w+)", re.M)


def _files_under(path: Path) -> list[Path]:
    if not path.is_dir():
        return []
    return sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def recipe_files(root: Path = ROOT, playbook: str = "playbooks/node_provision.yml") -> list[Path]:
    """The playbook, the roles it reaches (include_role, meta dependencies), the collection's modules
    those name (with all module_utils), the filter/action/lookup plugins and the rig's node recipe.
    recipe_hash() adds this file's recipe (VARS, CLEANUP, ...)."""
    start = root / playbook
    files = {start, root / "tests" / "rig" / "node.Containerfile"}
    roles: set[str] = set()
    todo = [start]
    while todo:
        text = todo.pop().read_text(errors="replace")
        for name in set(_FQCN.findall(text)) | set(_ROLE.findall(text)):
            role = root / "roles" / name
            if role.is_dir() and name not in roles:
                roles.add(name)
                found = _files_under(role)
                files.update(found)
                todo.extend(p for p in found if p.suffix in (".yml", ".yaml", ".j2"))
            if (root / "plugins" / "modules" / f"{name}.py").is_file():
                files.add(root / "plugins" / "modules" / f"{name}.py")
                files.update(_files_under(root / "plugins" / "module_utils"))
    for sub in ("filter", "action", "lookup"):
        files.update(_files_under(root / "plugins" / sub))
    files.update(p for p in (root / "ansible.cfg", root / "meta" / "runtime.yml") if p.is_file())
    return sorted(p for p in files if p.is_file())


def recipe_hash() -> str:
    h = hashlib.sha256()
    base = subprocess.run(["podman", "image", "inspect", "--format", "{{.Id}}", rig.IMAGE],
                          check=True, capture_output=True, text=True).stdout.strip()
    # The WP-CLI phar counts by its checked SHA-512, not by the directory it lies in.
    recipe = [VARS, BUILD_NAME, CLEANUP, HOSTKEYS_DROPIN]
    h.update(f"node image {base}\nrecipe {json.dumps(recipe, sort_keys=True)}\n".encode())
    h.update(f"wpcli {wpcli.checked()[1]}\n".encode())
    from ansible.release import __version__ as ansible_core

    h.update(f"ansible-core {ansible_core}\n".encode())
    for path in recipe_files():
        h.update(f"{path.relative_to(ROOT)}\n".encode())
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()[:16]


def _podman(*args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", *args], check=check, capture_output=True, text=True, timeout=timeout)


def _exists(tag: str) -> bool:
    return _podman("image", "exists", tag, check=False).returncode == 0


def image(log=print) -> str:
    """The provisioned image's tag; built first when missing (once, under a host-wide lock)."""
    tag = f"{REPO}:{recipe_hash()}"
    if _exists(tag):
        return tag
    LOCK.touch(exist_ok=True)
    with LOCK.open("r") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another session may be building the same image
        if not _exists(tag):
            t0 = time.monotonic()
            log(f"building {tag} (node_provision.yml on a fresh node, then podman commit)")
            _build(tag)
            log(f"built {tag} in {time.monotonic() - t0:.0f} s")
            _drop_old(tag)
    return tag


def _build(tag: str) -> None:
    with tempfile.TemporaryDirectory(prefix="pressluft-provisioned-") as tmp:
        work = Path(tmp)
        node = rig.start_node(work)
        try:
            inv = rig.inventory([node], extra={"node_base_node_name": BUILD_NAME})
            result = run_playbook(PLAYBOOK, inv, work, extravars={**VARS, **wpcli.extravars()})
            if result.rc != 0:
                raise rig.RigError(f"node_provision.yml failed while building {tag}:\n{result.explain()}")
            node.sh(CLEANUP)
            node.exec("install", "-m", "0644", "/dev/stdin",
                      "/etc/systemd/system/ssh.service.d/pressluft-rig-hostkeys.conf", input=HOSTKEYS_DROPIN)
            # systemd stops every service (MariaDB flushes its tables) before the container exits.
            _podman("stop", "-t", "180", node.name, timeout=240)
            _podman("commit", "-q", node.name, tag, timeout=600)
        finally:
            rig.stop_nodes([node])


def _drop_old(keep: str) -> None:
    """Remove provisioned images of older recipes, unless recent (another worktree may use them)
    or in use by a container (no --force)."""
    listed = _podman("images", "--format", "json", REPO, check=False).stdout or "[]"
    now = time.time()
    for img in json.loads(listed):
        names = img.get("Names") or []
        if keep in names or now - img.get("Created", now) < KEEP_OLD_S:
            continue
        for name in names:
            _podman("rmi", name, check=False)


def start(workdir: Path, caps: Iterable[str] = (), memory: str | None = None, bind: str | None = None,
          name: str | None = None) -> rig.Node:
    """A node booted from image(): its own machine id, host keys and name; the stack running.
    `bind` and `name`: as rig.start_node's."""
    tag = image()
    machine_id = workdir / f"machine-id-{secrets.token_hex(4)}"
    machine_id.write_text(secrets.token_hex(16) + "\n")
    node = rig.start_node(workdir, caps=caps, memory=memory, image=tag,
                          volumes=[f"{machine_id}:/etc/machine-id"], bind=bind, name=name)
    try:
        identity = node.exec("cat", "/etc/pressluft/node.yml").stdout
        node.exec("install", "-m", "0640", "/dev/stdin", "/etc/pressluft/node.yml",
                  input=identity.replace(json.dumps(BUILD_NAME), json.dumps(node.name)))
        down = [s for s in SERVICES if not node.unit_active(s)]
        if down:
            raise rig.RigError(f"{node.name} from {tag}: not active after boot: {', '.join(down)}")
    except Exception:
        rig.stop_nodes([node])
        raise
    return node


if __name__ == "__main__":
    print(image(log=lambda msg: print(f"==> {msg}", file=sys.stderr, flush=True)))

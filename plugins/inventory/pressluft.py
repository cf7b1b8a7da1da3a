# Copyright (c) Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: pressluft
short_description: Nodes and their WordPress environments from the Pressluft control-plane database
description:
  - Reads nodes, sites, environments and domains from the Pressluft control-plane database.
  - Uses a YAML configuration file whose name ends with C(pressluft.yml) or C(pressluft.yaml).
  - Every node becomes a host with its connection variables; hosts are grouped by provider and by role.
  - The host variable C(pressluft_environments) lists the environments placed on the node.
    It never holds secrets.
  - Works with plain SQLAlchemy Core (any database URL) or, without SQLAlchemy,
    with Python's sqlite3 for SQLite URLs.
author:
  - Pressluft developers (@pressluft)
requirements:
  - SQLAlchemy >= 2.0 for PostgreSQL and MySQL URLs (SQLite works without it)
extends_documentation_fragment:
  - constructed
  - inventory_cache
options:
  plugin:
    description: Mark this file as a P(pressluft.wordpress.pressluft#inventory) inventory source.
    required: true
    type: str
    choices: [pressluft, pressluft.wordpress.pressluft]
  db_url:
    description:
      - The control-plane database URL, for example C(sqlite:////var/lib/pressluft/pressluft.db)
        or C(postgresql+psycopg://pressluft@db/pressluft).
      - Without it, the default database of the C(pressluft) CLI is used
        (C($PRESSLUFT_HOME/pressluft.db), C($XDG_DATA_HOME/pressluft/pressluft.db)
        or C(~/.local/share/pressluft/pressluft.db)).
    type: str
    env:
      - name: PRESSLUFT_DB
  group:
    description: The group every node is added to.
    type: str
    default: pressluft
  include_states:
    description: Only nodes in these states become hosts. An empty list means every state except C(removed).
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
# pressluft.yml: every node of the default control-plane database
plugin: pressluft.wordpress.pressluft

---
# A PostgreSQL control plane, a group per PHP version used on the node, compose a variable
plugin: pressluft.wordpress.pressluft
db_url: postgresql+psycopg://pressluft@db.example.com/pressluft
keyed_groups:
  - key: pressluft_environments | map(attribute='php_version') | unique
    prefix: php
compose:
  site_count: pressluft_environments | map(attribute='site') | unique | length
groups:
  busy: pressluft_environments | length > 50
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: /tmp/pressluft-inventory-cache
"""

import json
import os
import re
import sqlite3
import sys

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable
from ansible.utils.display import Display
from ansible.utils.unsafe_proxy import wrap_var
from ansible_collections.pressluft.wordpress.plugins.module_utils._names import RESERVED_NODES

try:
    import sqlalchemy
    HAS_SQLALCHEMY = True
except ImportError:
    HAS_SQLALCHEMY = False

# Plain SQL over the control-plane schema (pressluft_lib.storage.models); no ORM: AWX needs no pressluft_lib.
NODES_SQL = ('SELECT id, name, host, port, "user", ssh_key_path, local, provider, roles, state'
             " FROM nodes ORDER BY name")
ENVS_SQL = (
    "SELECT e.id, s.node_id, s.name, e.name, COALESCE(e.php_version, s.php_version), e.state"
    " FROM environments e JOIN sites s ON s.id = e.site_id WHERE e.state != 'deleted' ORDER BY s.name, e.name"
)
DOMAINS_SQL = "SELECT env_id, name FROM domains WHERE state != 'removed' ORDER BY name"
_GROUP_RE = re.compile(r"[^A-Za-z0-9_]")


def default_db_url():
    home = os.environ.get("PRESSLUFT_HOME")
    if not home:
        data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
        home = os.path.join(data, "pressluft")
    return "sqlite:///" + os.path.join(home, "pressluft.db")


def _sqlite_path(url):
    """The file path of a sqlite URL (sqlite:///relative, sqlite:////absolute), or None."""
    if not url.startswith("sqlite"):
        return None
    path = url.split(":///", 1)[1] if ":///" in url else ""
    return path.split("?", 1)[0] or None


def fetch_rows(url):
    """(nodes, environments, domains) as lists of tuples."""
    queries = (NODES_SQL, ENVS_SQL, DOMAINS_SQL)
    path = _sqlite_path(url)
    if path is not None:
        if not os.path.exists(path):
            raise AnsibleError("the Pressluft database %s does not exist (run: pressluft db upgrade)" % path)
        # Read-only: an inventory never changes the control plane.
        conn = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
        try:
            return tuple(conn.execute(q).fetchall() for q in queries)
        finally:
            conn.close()
    if not HAS_SQLALCHEMY:
        scheme = url.split(":", 1)[0]
        raise AnsibleError("the pressluft inventory needs SQLAlchemy for %s database URLs" % scheme)
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            return tuple([tuple(r) for r in conn.execute(sqlalchemy.text(q))] for q in queries)
    finally:
        engine.dispose()


def _roles(value):
    if not value:
        return []
    if isinstance(value, (list, tuple)):
        return [str(r) for r in value]
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = [r.strip() for r in str(value).split(",")]
    if isinstance(parsed, str):
        parsed = [parsed]
    return [str(r) for r in parsed if r]


def build_hosts(nodes, envs, domains, include_states):
    """A list of {'name', 'vars', 'groups'} dicts: the cacheable result."""
    by_env = {}
    for env_id, name in domains:
        by_env.setdefault(env_id, []).append(name)
    by_node = {}
    for env_id, node_id, site, env, php, state in envs:
        by_node.setdefault(node_id, []).append(
            {"site": site, "env": env, "domains": by_env.get(env_id, []), "php_version": php, "state": state})
    hosts = []
    for node_id, name, host, port, user, key, local, provider, roles, state in nodes:
        if (include_states and state not in include_states) or (not include_states and state == "removed"):
            continue
        if name in RESERVED_NODES:  # `all`, `localhost`...: Ansible's own names (the CLI refuses them)
            Display().warning("pressluft inventory: node %r skipped, its name is reserved" % name)
            continue
        hostvars = {"pressluft_node_state": state, "pressluft_provider": provider,
                    "pressluft_roles": _roles(roles), "pressluft_environments": by_node.get(node_id, [])}
        if local:
            # The controller's own Python (inventory values are not templated, so no ansible_playbook_python).
            hostvars.update(ansible_connection="local", ansible_python_interpreter=sys.executable)
            if os.geteuid() == 0:
                hostvars["ansible_become"] = False  # already root; sudo may not be installed yet
        else:
            hostvars.update(ansible_host=host, ansible_port=int(port or 22))
            if user:
                hostvars["ansible_user"] = user
            if key:
                hostvars["ansible_ssh_private_key_file"] = key
        groups = []
        if provider:
            groups.append("provider_" + _GROUP_RE.sub("_", provider))
        groups.extend("role_" + _GROUP_RE.sub("_", r) for r in hostvars["pressluft_roles"])
        hosts.append({"name": name, "vars": hostvars, "groups": groups})
    return hosts


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = "pressluft.wordpress.pressluft"

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith(("pressluft.yml", "pressluft.yaml"))

    def _load(self, path, cache):
        """Hosts from the cache when allowed and present, else from the database."""
        use_cache = self.get_option("cache") and cache
        cache_key = self.get_cache_key(path)
        if use_cache:
            try:
                return self._cache[cache_key]
            except KeyError:
                pass
        url = self.get_option("db_url") or default_db_url()
        try:
            rows = fetch_rows(url)
        except AnsibleError:
            raise
        except Exception as exc:  # a driver error: its first line, never the URL (it may hold a password)
            first = to_native((str(exc).splitlines() or [""])[0])
            msg = "cannot read the Pressluft database: %s: %s" % (exc.__class__.__name__, first)
            raise AnsibleError(msg) from None
        hosts = build_hosts(*rows, include_states=self.get_option("include_states"))
        if self.get_option("cache"):
            self._cache[cache_key] = hosts
        return hosts

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        hosts = self._load(path, cache)
        top = self.inventory.add_group(self.get_option("group"))
        strict = self.get_option("strict")
        for host in hosts:
            name = self.inventory.add_host(host["name"], group=top)
            for group in host["groups"]:
                self.inventory.add_child(self.inventory.add_group(group), name)
            for key, value in host["vars"].items():
                # Database values are data, never templates (ansible-core 2.19 never templates a plugin's
                # values; wrap_var gives 2.17/2.18 the same guarantee).
                self.inventory.set_variable(name, key, wrap_var(value))
            hostvars = self.inventory.get_host(name).get_vars()
            self._set_composite_vars(self.get_option("compose"), hostvars, name, strict=strict)
            self._add_host_to_composed_groups(self.get_option("groups"), hostvars, name, strict=strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), hostvars, name, strict=strict)

"""ControlPlane methods for provider accounts (add, list, remove, catalog) and the nodes created from them
(node create, node destroy). docs/providers.md.

A provider's API token goes into the secret store (scope provider:<name>) after one authenticated read
proved it; no call returns it, no row, event or audit detail holds it.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
from pathlib import Path
from typing import Any

from sqlalchemy import select

from pressluft_lib import jobtypes, names, queue, schemas, settings, urls
from pressluft_lib.cloud import hetzner
from pressluft_lib.errors import ConflictError, NotFound, ValidationError
from pressluft_lib.jobs import active_env_rows
from pressluft_lib.services.base import ServiceBase, iso
from pressluft_lib.services.views import node_dict
from pressluft_lib.states import JOB_ACTIVE, NodeState, ResourceState
from pressluft_lib.storage import secret_store
from pressluft_lib.storage.models import FloatingIp, Job, Node, Provider, Site
from pressluft_lib.storage.secret_store import SecretStore

KINDS = ("hetzner",)
# Hetzner names of server types, locations, images and networks: lowercase words with digits, - and .
_CLOUD_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{0,62}")
# Presets for `node create --profile`: a server type and the node tuning node_provision gets.
PROFILES: dict[str, dict[str, Any]] = {
    "small": {
        "server_type": "cx22",
        "variables": {"node_mariadb_buffer_pool_mb": "512", "node_php_opcache_memory_mb": "128"},
    },
    "medium": {
        "server_type": "cx32",
        "variables": {"node_mariadb_buffer_pool_mb": "2048", "node_php_opcache_memory_mb": "256"},
    },
    "large": {
        "server_type": "cx42",
        "variables": {"node_mariadb_buffer_pool_mb": "6144", "node_php_opcache_memory_mb": "512"},
    },
}
_ENDPOINT = re.compile(r"https?://[A-Za-z0-9.:\[\]-]+(/[A-Za-z0-9._~/-]*)?")
NETWORK_RANGE = "10.0.0.0/16"  # a private network node create makes when --network names a new one
NETWORK_SUBNET = "10.0.1.0/24"


def _cloud_name(kind: str, value: object) -> str:
    if not isinstance(value, str) or not _CLOUD_NAME.fullmatch(value):
        raise ValidationError(
            f"invalid {kind} {value!r}: lowercase letters, digits, '.' and '-'",
            details={kind.replace(" ", "_"): str(value)[:100]},
        )
    return value


def _cidrs(values: list[str]) -> list[str]:
    out = []
    for v in values:
        try:
            out.append(str(ipaddress.ip_network(v, strict=False)))
        except ValueError:
            raise ValidationError(
                f"invalid admin CIDR {v[:60]!r}: e.g. 203.0.113.7/32", details={"admin_cidr": v[:60]}
            ) from None
    if not out:
        raise ValidationError(
            "a provider needs at least one --admin-cidr: the sources allowed to reach SSH "
            "(the control plane's own address among them)"
        )
    return sorted(set(out))


def _endpoint(value: str | None) -> str:
    if value is None:
        return hetzner.DEFAULT_ENDPOINT
    urls.refuse_credentials(value, "API endpoint", "the token is read from stdin")
    if not _ENDPOINT.fullmatch(value):
        raise ValidationError(
            f"invalid API endpoint {urls.shown(value)}: an http(s) URL such as {hetzner.DEFAULT_ENDPOINT}"
        )
    return value.rstrip("/")


class ProvidersMixin(ServiceBase):
    """ControlPlane methods for provider accounts and provider-created nodes."""

    # ---- provider accounts
    def provider_add(
        self, kind: str, name: str, token: str, admin_cidrs: list[str], endpoint: str | None = None
    ) -> dict[str, Any]:
        if kind not in KINDS:
            raise ValidationError(f"unknown provider kind {kind!r}; known: {', '.join(KINDS)}")
        name = names.validate_provider(name)
        cidrs = _cidrs(admin_cidrs)
        endpoint = _endpoint(endpoint)
        token = token.strip()
        hetzner.validate_token(token, endpoint)  # before anything is written
        key_path = self._provider_key(name)
        with self._mutation("provider.add", f"provider:{name}") as (session, audit):
            if session.scalar(select(Provider.id).where(Provider.name == name)) is not None:
                raise ConflictError(f"provider {name!r} already exists", details={"provider": name})
            row = Provider(name=name, kind=kind, api_endpoint=endpoint, admin_cidrs=cidrs)
            session.add(row)
            SecretStore(url=self.url).put(
                session, names.provider_secret_scope(name), names.PROVIDER_TOKEN, token
            )
            session.flush()
            audit["detail"] = {"kind": kind, "endpoint": endpoint, "admin_cidrs": cidrs}
            return {**_provider_dict(row), "ssh_key": f"{key_path}.pub"}

    def provider_list(self) -> list[dict[str, Any]]:
        with self.session_factory() as session:
            return [_provider_dict(p) for p in session.scalars(select(Provider).order_by(Provider.name))]

    def provider_remove(self, name: str) -> dict[str, Any]:
        with self._mutation("provider.remove", f"provider:{name}") as (session, _audit):
            row = self._provider(session, name)
            nodes = session.scalars(
                select(Node.name).where(Node.provider_id == row.id, Node.state != NodeState.REMOVED)
            ).all()
            if nodes:
                raise ConflictError(
                    f"provider {name} still has nodes: {', '.join(sorted(nodes))} (node destroy them first)",
                    details={"nodes": list(nodes)},
                )
            if settings.load(session).dns_provider == name:
                raise ConflictError(f"provider {name} answers DNS-01 challenges (settings unset dns_provider "
                                    "first)", details={"setting": "dns_provider"})
            fips = session.execute(
                select(FloatingIp, Site).join(Site, FloatingIp.site_id == Site.id)
                .where(FloatingIp.provider_id == row.id)
            ).all()
            held = sorted(
                f"{f.name} (site {site.name})" for f, site in fips if site.state != ResourceState.DELETED
            )
            if held:
                raise ConflictError(
                    f"provider {name} still holds floating IPs of live sites: {', '.join(held)}",
                    details={"floating_ips": held},
                )
            SecretStore(url=self.url).delete(session, names.provider_secret_scope(name), names.PROVIDER_TOKEN)
            # The row goes, so the name can be added again (a rotated account, a new token) and `provider
            # list` shows only accounts that can still be used. Destroyed nodes keep their history without
            # the foreign key: the account's name stays in their `cloud` record.
            for node in session.scalars(select(Node).where(Node.provider_id == row.id)):
                node.cloud = {**(node.cloud or {}), "provider": name}
                node.provider_id = None
            for fip, _site in fips:
                session.delete(fip)
            session.flush()
            session.delete(row)
            return {"name": name, "removed": True}

    def provider_catalog(self, name: str) -> dict[str, Any]:
        with self.session_factory() as session:
            row = self._provider(session, name)
            token = self._token(session, row)
            endpoint = row.api_endpoint
        out = hetzner.catalog(token, endpoint)
        out["profiles"] = [
            {"name": k, "server_type": v["server_type"], "variables": v["variables"]}
            for k, v in PROFILES.items()
        ]
        return {"provider": name, **out}

    # ---- nodes created from a provider
    def node_create(
        self,
        name: str,
        provider: str,
        server_type: str | None,
        location: str,
        image: str = "debian-12",
        network: str | None = None,
        profile: str | None = None,
        variables: dict[str, str] | None = None,
        **options: Any,
    ) -> dict[str, Any]:
        """Queue node_create (then node_provision, queued by its after hook). Again on a node whose
        creation failed or that exists already: the same job again (every step converges)."""
        name = names.validate_node(name)
        preset = {"server_type": None, "variables": {}}
        if profile is not None:
            if profile not in PROFILES:
                raise ValidationError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
            preset = PROFILES[profile]
        server_type = _cloud_name("server type", server_type or preset["server_type"] or "")
        location = _cloud_name("location", location)
        image = _cloud_name("image", image)
        if network is not None:
            network = _cloud_name("network", network)
        provision_payload, role_vars = schemas.parse(schemas.NodeOptions, options).split()
        provision_vars = {**preset["variables"], **(variables or {}), **role_vars}
        jobtypes.check_payload_keys(jobtypes.get("node_provision"), provision_vars, user=True)
        with self.session_factory() as session:
            account = self._provider(session, provider)
            token, endpoint = self._token(session, account), account.api_endpoint
        catalog = hetzner.catalog(token, endpoint)  # refuse unknown names before a job starts
        for kind, value, known in (
            ("server type", server_type, [t["name"] for t in catalog["server_types"]]),
            ("location", location, [loc["name"] for loc in catalog["locations"]]),
            ("image", image, catalog["images"]),
        ):
            if value not in known:
                raise ValidationError(
                    f"unknown {kind} {value!r} at provider {provider}; known: "
                    f"{', '.join(known)} (pressluft provider catalog {provider})"
                )
        zone = next(loc["network_zone"] for loc in catalog["locations"] if loc["name"] == location)
        key_path = self._provider_key(provider)
        spec = {"server_type": server_type, "location": location, "image": image, "network": network}
        payload = {
            "pressluft_provider": provider,
            "pressluft_api_endpoint": endpoint,
            "pressluft_admin_cidrs": list(account.admin_cidrs),
            "pressluft_ssh_public_key": Path(f"{key_path}.pub").read_text().strip(),
            "pressluft_server_type": server_type,
            "pressluft_location": location,
            "pressluft_image": image,
            "pressluft_network": network or "",
            "pressluft_network_range": NETWORK_RANGE,
            "pressluft_network_subnet": NETWORK_SUBNET,
            "pressluft_network_zone": zone,
            # Not for the playbook: what the after hook queues node_provision with.
            "pressluft_provision": {"payload": provision_payload, "variables": provision_vars},
        }
        with self._mutation("node.create", f"node:{name}") as (session, audit):
            account = self._provider(session, provider)
            node = session.scalar(select(Node).where(Node.name == name))
            if node is None:
                node = Node(
                    name=name,
                    host="0.0.0.0",
                    port=22,
                    user="root",
                    ssh_key_path=str(key_path),
                    local=False,
                    provider="hcloud",
                    provider_id=account.id,
                    cloud=spec,
                    roles=["web", "db", "cache"],
                    state=NodeState.PENDING,
                )
                session.add(node)
                session.flush()
            elif node.provider_id != account.id or dict(node.cloud or {}, server_id=None) != dict(
                spec, server_id=None
            ):
                raise ConflictError(
                    f"node {name!r} exists with other settings ({_describe(node)}); pick another name",
                    details={"node": name},
                )
            elif node.state == NodeState.REMOVED:
                raise ConflictError(f"node {name} was destroyed; pick another name", details={"node": name})
            if node.state == NodeState.ACTIVE:  # a rerun to converge the server: nothing to provision after
                payload["pressluft_provision"] = None
            job = queue.enqueue(session, "node_create", node=node, payload=payload, actor=self.actor)
            audit["result"] = f"job:{job.id}"
            audit["detail"] = {"provider": provider, **spec}
            return {"job_id": job.id, "node": name, "provider": provider, **spec}

    def node_destroy(self, name: str) -> dict[str, Any]:
        with self._mutation("node.destroy", f"node:{name}") as (session, audit):
            node = self._node(session, name)
            if node.provider_id is None:
                raise ValidationError(
                    f"node {name} was not created from a provider: `node remove` forgets "
                    "it (its server is yours to delete)",
                    details={"node": name},
                )
            live = session.scalars(
                select(Site.name).where(Site.node_id == node.id, Site.state != ResourceState.DELETED)
            ).all()
            if live:
                raise ConflictError(
                    f"node {name} still hosts sites: {', '.join(sorted(live))} (move or delete them first)",
                    details={"sites": list(live)},
                )
            busy = session.scalar(select(Job.id).where(Job.node_id == node.id, Job.state.in_(JOB_ACTIVE)))
            if busy is not None:
                raise ConflictError(f"node {name} has an active job ({busy})", details={"job_id": busy})
            account = session.get(Provider, node.provider_id)
            payload = {"pressluft_provider": account.name, "pressluft_api_endpoint": account.api_endpoint}
            job = queue.enqueue(session, "node_destroy", node=node, payload=payload, actor=self.actor)
            audit["result"] = f"job:{job.id}"
            return {"job_id": job.id, "node": name}

    # ---- a site's floating IP
    def site_ip(self, site: str, name: str | None = None) -> dict[str, Any]:
        """Queue site_ip: floating IP `name` (default <site>-ip) at the provider of the site's node, created
        when the account has none of that name, routed to the node; `site move` takes it along."""
        names.validate_site(site)
        name = _cloud_name("floating IP name", name if name is not None else f"{site}-ip")
        with self._mutation("site.ip", f"site:{site}", {"floating_ip": name}) as (session, audit):
            site_row, env_row = active_env_rows(session, site, names.DEFAULT_ENV, "site ip needs it active")
            node = site_row.node
            if node.provider_id is None:
                raise ValidationError(
                    f"site {site} is on node {node.name}, which was not created from a provider: a floating "
                    "IP needs a provider node (node create); point DNS at the node instead",
                    details={"node": node.name},
                )
            current = self._floating_ip(session, site_row)
            if current is not None and current.name != name:
                raise ConflictError(
                    f"site {site} has floating IP {current.name} ({current.address}) already",
                    details={"floating_ip": current.name},
                )
            taken = session.scalar(
                select(Site.name)
                .join(FloatingIp, FloatingIp.site_id == Site.id)
                .where(FloatingIp.provider_id == node.provider_id, FloatingIp.name == name)
                .where(Site.id != site_row.id)
            )
            if taken is not None:
                raise ConflictError(
                    f"floating IP {name} belongs to site {taken}",
                    details={"floating_ip": name, "site": taken},
                )
            account = session.get(Provider, node.provider_id)
            payload = {"pressluft_floating_ip": name, "pressluft_api_endpoint": account.api_endpoint}
            job = queue.enqueue(
                session, "site_ip", site=site_row, env=env_row, payload=payload, actor=self.actor
            )
            audit["result"] = f"job:{job.id}"
            return {"job_id": job.id, "site": site, "node": node.name, "floating_ip": name}

    def site_ip_release(self, site: str) -> dict[str, Any]:
        """Queue site_ip with state absent: the site's node stops answering on its floating IP, which is then
        deleted at the provider (its address is gone); the site keeps serving on its node's own address."""
        names.validate_site(site)
        with self._mutation("site.ip", f"site:{site}", {"release": True}) as (session, audit):
            site_row, env_row = active_env_rows(session, site, names.DEFAULT_ENV, "site ip needs it active")
            current = self._floating_ip(session, site_row)
            if current is None:
                raise NotFound(f"site {site} has no floating IP", details={"site": site})
            payload = {**self._floating_ip_payload(session, current), "pressluft_floating_ip_state": "absent"}
            # The job runs with the secrets of its node's account: the IP's, which a move keeps equal.
            job = queue.enqueue(
                session, "site_ip", site=site_row, env=env_row, payload=payload, actor=self.actor
            )
            audit["result"] = f"job:{job.id}"
            return {"job_id": job.id, "site": site, "node": site_row.node.name, "floating_ip": current.name,
                    "address": current.address}

    # ---- helpers
    def _provider(self, session, name: str) -> Provider:
        row = session.scalar(select(Provider).where(Provider.name == name))
        if row is None:
            raise NotFound(
                f"provider {name!r} does not exist (pressluft provider add hetzner {name})",
                details={"provider": name},
            )
        return row

    def _token(self, session, row: Provider) -> str:
        return SecretStore(url=self.url).get(
            session, names.provider_secret_scope(row.name), names.PROVIDER_TOKEN
        )

    def _provider_key(self, name: str) -> Path:
        """The control plane's SSH key for servers of this account (created once, 0600, beside the DB)."""
        keys = secret_store.key_file_path(self.url).parent / "keys"
        keys.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = keys / f"provider-{name}.ed25519"
        if not path.exists():
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

            key = Ed25519PrivateKey.generate()
            private = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
            )
            public = key.public_key().public_bytes(
                serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
            )
            tmp = path.with_name(f".{path.name}.{os.getpid()}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(private)
            Path(f"{path}.pub").write_bytes(public + f" pressluft-{name}\n".encode())
            os.replace(tmp, path)
        return path


def ssh_key_name(public_key: str) -> str:
    """The name of the control plane's key at the provider: unique per key, so a rerun finds it."""
    return "pressluft-" + hashlib.sha256(public_key.split()[1].encode()).hexdigest()[:12]


def _describe(node: Node) -> str:
    cloud = node.cloud or {}
    return ", ".join(f"{k} {v}" for k, v in cloud.items() if v and k != "server_id") or "a static node"


def _provider_dict(p: Provider) -> dict[str, Any]:
    # Never the token: it is only in the secret store.
    return {
        "name": p.name,
        "kind": p.kind,
        "api_endpoint": p.api_endpoint,
        "admin_cidrs": list(p.admin_cidrs),
        "created_at": iso(p.created_at),
    }


__all__ = ["PROFILES", "ProvidersMixin", "node_dict", "ssh_key_name"]

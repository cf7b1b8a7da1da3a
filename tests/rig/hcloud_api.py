"""A small stateful fake of the Hetzner Cloud API, served on loopback, for the hetzner.hcloud modules and
the `hcloud` library (both select it with `api_endpoint` / HCLOUD_ENDPOINT).

It holds servers, actions, SSH keys, firewalls (rules and label-selector targets), networks, primary and
floating IPs in memory and answers in the shapes the library parses (hcloud 2.x: `servers/client.py`,
`_client.py`). Not a mock of Pressluft: it stands where api.hetzner.cloud would. What a "server" is comes
from the test: `on_server_create(server, public_keys)` starts a podman node reachable at the server's
public IPv4 (a loopback address the fake hands out), `on_server_delete(server)` removes it.

Floating IPs get documentation addresses (198.51.100.0/24): a node answers on one only when the address is
configured on its interface, which a test checks inside the node. What Hetzner's routing does (packets for
a floating IP reach the server it is assigned to) the fake does on loopback: `floating_ip_port(name)` is a
port on 127.0.0.1 whose connections go to the HTTP port of the server the IP is assigned to at that moment
(none: the connection is closed). A server has that HTTP port when it booted through
`serve_podman_nodes` or was registered with `add_server` (a node the test started itself).

DNS: zones (`add_zone(name)`) with RRSets, as hetzner.hcloud's zone_rrset module calls them (get, create,
set_records, delete); TXT values must be quoted as the API wants. `on_txt(fqdn, values)` hears every change
of a TXT RRSet (values [] when it is gone), so a test can serve them from a real DNS server.

Faults a test can inject: a wrong token is refused as the API does (401 unauthorized); `fail_next(method,
path, status, code, message)` answers the next matching request with that API error (quota:
403 resource_limit_exceeded); test code may delete resources by hand (`delete("firewalls", id)`).
"""

from __future__ import annotations

import copy
import itertools
import json
import secrets
import selectors
import socket
import socketserver
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

LOCATIONS = [
    {
        "id": 1,
        "name": "fsn1",
        "description": "Falkenstein DC Park 1",
        "country": "DE",
        "city": "Falkenstein",
        "latitude": 50.47612,
        "longitude": 12.370071,
        "network_zone": "eu-central",
    },
    {
        "id": 2,
        "name": "nbg1",
        "description": "Nuremberg DC Park 1",
        "country": "DE",
        "city": "Nuremberg",
        "latitude": 49.452102,
        "longitude": 11.076665,
        "network_zone": "eu-central",
    },
]
_PRICES = {"cx22": ("3.79", "4.51"), "cx32": ("6.80", "8.09")}
SERVER_TYPES = [
    {
        "id": i,
        "name": name,
        "description": name.upper(),
        "cores": cores,
        "memory": mem,
        "disk": disk,
        "deprecated": False,
        "deprecation": None,
        "storage_type": "local",
        "cpu_type": "shared",
        "architecture": "x86",
        "included_traffic": 21990232555520,
        "locations": [
            {
                "id": loc["id"],
                "name": loc["name"],
                "deprecation": None,
                "available": True,
                "recommended": True,
            }
            for loc in LOCATIONS
        ],
        "prices": [
            {
                "location": loc["name"],
                "price_hourly": {"net": "0.0060", "gross": "0.0071"},
                "price_monthly": {"net": _PRICES[name][0], "gross": _PRICES[name][1]},
                "included_traffic": 21990232555520,
                "price_per_tb_traffic": {"net": "1.00", "gross": "1.19"},
            }
            for loc in LOCATIONS
        ],
    }
    for i, (name, cores, mem, disk) in enumerate((("cx22", 2, 4.0, 40), ("cx32", 4, 8.0, 80)), start=1)
]
IMAGES = [
    {
        "id": 114690387,
        "type": "system",
        "status": "available",
        "name": "debian-12",
        "description": "Debian 12",
        "image_size": None,
        "disk_size": 5,
        "created": "2023-06-13T06:00:02+00:00",
        "created_from": None,
        "bound_to": None,
        "os_flavor": "debian",
        "os_version": "12",
        "rapid_deploy": True,
        "protection": {"delete": False},
        "deprecated": None,
        "deleted": None,
        "labels": {},
        "architecture": "x86",
    },
]
DATACENTERS = [
    {
        "id": 10 + loc["id"],
        "name": f"{loc['name']}-dc1",
        "description": loc["description"],
        "location": loc,
        "server_types": {"supported": [1, 2], "available": [1, 2], "available_for_migration": [1, 2]},
    }
    for loc in LOCATIONS
]
COLLECTIONS = ("servers", "ssh_keys", "firewalls", "networks", "primary_ips", "floating_ips")
_ONE = {
    "servers": "server",
    "ssh_keys": "ssh_key",
    "firewalls": "firewall",
    "networks": "network",
    "primary_ips": "primary_ip",
    "floating_ips": "floating_ip",
}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _matches(labels: dict[str, str], selector: str) -> bool:
    """Hetzner label selectors, the forms used here: `k=v`, `k!=v`, `k`, `!k`, comma-separated (AND)."""
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            k, v = term.split("!=", 1)
            ok = labels.get(k) != v
        elif "=" in term:
            k, v = term.split("=", 1)
            ok = labels.get(k) == v.lstrip("=")
        elif term.startswith("!"):
            ok = term[1:] not in labels
        else:
            ok = term in labels
        if not ok:
            return False
    return True


class FakeHcloud:
    """The fake's state and its HTTP server; use as a context manager (serves on 127.0.0.1:<free port>)."""

    def __init__(self, token: str | None = None):
        self.token = token or secrets.token_hex(32)
        self.ids = itertools.count(1000)
        self.res: dict[str, dict[int, dict]] = {c: {} for c in COLLECTIONS}
        self.actions: dict[int, dict] = {}
        self.waits: dict[int, threading.Event] = {}  # actions that run until a hook finished
        self.requests: list[tuple[str, str]] = []  # (method, path) of every authenticated request
        self.faults: list[tuple[str, str, ApiError]] = []
        self.on_server_create: Callable[[dict, list[str]], None] | None = None
        self.on_server_delete: Callable[[dict], None] | None = None
        self.zones: dict[int, dict] = {}
        self.on_txt: Callable[[str, list[str]], None] | None = None
        self.lock = threading.RLock()
        self._http: ThreadingHTTPServer | None = None
        self._routers: dict[str, socketserver.ThreadingTCPServer] = {}

    # ---- lifecycle
    def __enter__(self) -> FakeHcloud:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}") if length else {}
                status, payload = fake.handle(
                    self.command, self.path, self.headers.get("Authorization", ""), body
                )
                data = b"" if payload is None else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._http.serve_forever, daemon=True, name="fake-hcloud").start()
        return self

    def __exit__(self, *exc: object) -> None:
        for router in self._routers.values():
            router.shutdown()
            router.server_close()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()

    @property
    def endpoint(self) -> str:
        assert self._http is not None
        return f"http://127.0.0.1:{self._http.server_address[1]}/v1"

    # ---- test controls
    def fail_next(self, method: str, path: str, status: int, code: str, message: str) -> None:
        """The next `method` request to exactly `path` (e.g. POST /servers) gets this API error."""
        self.faults.append((method, path, ApiError(status, code, message)))

    def add_zone(self, name: str) -> dict:
        with self.lock:
            zone = {"id": next(self.ids), "name": name, "mode": "primary", "ttl": 3600, "labels": {},
                    "protection": {"delete": False}, "status": "ok", "rrsets": {}}
            self.zones[zone["id"]] = zone
            return zone

    def rrsets(self, zone: str) -> dict[str, dict]:
        """The zone's RRSets by id (`name/TYPE`)."""
        with self.lock:
            found = next(z for z in self.zones.values() if z["name"] == zone)
            return copy.deepcopy(found["rrsets"])

    def named(self, collection: str) -> dict[str, dict]:
        with self.lock:
            return {r["name"]: copy.deepcopy(r) for r in self.res[collection].values()}

    def add_server(self, name: str, http: tuple[str, int], location: str = "fsn1") -> dict:
        """A server that runs already (a node the test started): no boot hook, HTTP at `http`."""
        with self.lock:
            dc = next(d for d in DATACENTERS if d["location"]["name"] == location)
            pip = self._create("primary_ips", {"name": f"{name}-ipv4", "datacenter": dc["name"]})
            pip = pip["primary_ip"]
            hook, self.on_server_create = self.on_server_create, None
            try:
                made = self._create_server(
                    {"id": next(self.ids), "name": name, "labels": {}, "created": _now()},
                    {"server_type": "cx22", "image": "debian-12", "location": location,
                     "public_net": {"ipv4": pip["id"]}},
                )
            finally:
                self.on_server_create = hook
            self.res["servers"][made["server"]["id"]]["_http"] = http
            return made["server"]

    def floating_ip_port(self, name: str) -> int:
        """A port on 127.0.0.1 that stands for floating IP `name` (see the module's docstring)."""
        with self.lock:
            if name not in self._routers:
                fake = self

                class Route(socketserver.BaseRequestHandler):
                    def handle(self) -> None:
                        backend = fake._routed(name)
                        if backend is None:
                            return
                        with socket.create_connection(backend, timeout=30) as upstream:
                            _pipe(self.request, upstream)

                router = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Route)
                router.daemon_threads = True
                threading.Thread(target=router.serve_forever, daemon=True, name=f"fip-{name}").start()
                self._routers[name] = router
            return self._routers[name].server_address[1]

    def _routed(self, name: str) -> tuple[str, int] | None:
        with self.lock:
            fip = next((f for f in self.res["floating_ips"].values() if f["name"] == name), None)
            server = self.res["servers"].get(fip["server"]) if fip and fip["server"] else None
            return server.get("_http") if server else None

    def delete(self, collection: str, rid: int) -> None:
        """Delete a resource behind Pressluft's back (drift), as a user in the Cloud Console would."""
        with self.lock:
            gone = self.res[collection].pop(rid)
            if collection == "servers" and self.on_server_delete:
                self.on_server_delete(gone)

    # ---- HTTP
    def handle(self, method: str, raw: str, auth: str, body: dict) -> tuple[int, Any]:
        url = urlsplit(raw)
        path = url.path.removeprefix("/v1")
        parsed = parse_qs(url.query)
        query: dict[str, Any] = {k: v[-1] for k, v in parsed.items()}
        query["id_all"] = parsed.get("id", [])
        if auth != f"Bearer {self.token}":
            return 401, {
                "error": {"code": "unauthorized", "message": "unable to authenticate", "details": {}}
            }
        with self.lock:
            self.requests.append((method, path))
            for i, (m, p, err) in enumerate(self.faults):
                if m == method and p == path:
                    del self.faults[i]
                    return err.status, {"error": {"code": err.code, "message": err.message, "details": {}}}
            try:
                return self._route(method, [p for p in path.split("/") if p], query, body)
            except ApiError as err:
                return err.status, {"error": {"code": err.code, "message": err.message, "details": {}}}

    def _route(self, method: str, parts: list[str], query: dict, body: dict) -> tuple[int, Any]:
        static = {
            "locations": LOCATIONS,
            "server_types": SERVER_TYPES,
            "images": IMAGES,
            "datacenters": DATACENTERS,
        }
        if parts == ["pricing"]:
            return 200, {"pricing": self._pricing()}
        if len(parts) >= 2 and parts[-2] == "actions" and parts[-1].isdigit() and method == "GET":
            return 200, {"action": self._action_get(int(parts[-1]))}
        if parts == ["actions"]:
            ids = [int(i) for i in query.get("id_all", [])]
            return 200, {
                "actions": [self._action_get(i) for i in ids if i in self.actions],
                **_meta(len(ids)),
            }
        name = parts[0] if parts else ""
        if name == "zones":
            return self._zones(method, parts[1:], body)
        if name in static:
            rows = static[name]
            if len(parts) == 2:
                found = [r for r in rows if str(r["id"]) == parts[1]]
                if not found:
                    raise ApiError(404, "not_found", f"{name} not found")
                return 200, {_singular(name): found[0]}
            rows = _filter(rows, query)
            return 200, {name: rows, **_meta(len(rows))}
        if name not in COLLECTIONS:
            raise ApiError(404, "not_found", f"no route {'/'.join(parts)}")
        coll = self.res[name]
        if len(parts) == 1:
            if method == "GET":
                rows = _filter([self._view(name, r) for r in coll.values()], query)
                return 200, {name: rows, **_meta(len(rows))}
            if method == "POST":
                return 201, self._create(name, body)
        rid = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else -1
        if rid not in coll:
            raise ApiError(
                404, "not_found", f"{_ONE[name]} with ID '{parts[1] if len(parts) > 1 else ''}' not found"
            )
        row = coll[rid]
        if len(parts) == 2:
            if method == "GET":
                return 200, {_ONE[name]: self._view(name, row)}
            if method == "PUT":
                for key in ("name", "labels", "rules", "auto_delete"):
                    if key in body and body[key] is not None:
                        row[key] = body[key]
                return 200, {_ONE[name]: self._view(name, row)}
            if method == "DELETE":
                if row.get("protection", {}).get("delete"):
                    raise ApiError(423, "protected", f"{_ONE[name]} is delete protected")
                del coll[rid]
                if name == "servers":
                    for pip in self.res["primary_ips"].values():
                        if pip["assignee_id"] == rid:
                            pip["assignee_id"] = None
                            if pip.get("auto_delete"):
                                pass  # kept: Pressluft creates them with auto_delete false
                    if self.on_server_delete:
                        self.on_server_delete(row)
                    return 200, {"action": self._action("delete_server", ("server", rid))}
                return 204, None
        if len(parts) == 4 and parts[2] == "actions" and method == "POST":
            return 201, self._resource_action(name, row, parts[3], body)
        raise ApiError(404, "not_found", f"no route {'/'.join(parts)}")

    # ---- DNS zones and RRSets (docs.hetzner.cloud/reference/cloud#zone-rrsets)
    def _zones(self, method: str, parts: list[str], body: dict) -> tuple[int, Any]:
        zone = next((z for z in self.zones.values() if parts and parts[0] in (z["name"], str(z["id"]))), None)
        if zone is None:
            raise ApiError(404, "not_found", f"zone {parts[0] if parts else ''!r} not found")
        view = {k: v for k, v in zone.items() if k != "rrsets"}
        if parts[1:] == [] and method == "GET":
            return 200, {"zone": view}
        sets = zone["rrsets"]
        if parts[1:] == ["rrsets"] and method == "POST":
            rid = f"{body.get('name')}/{body.get('type')}"
            if rid in sets:
                raise ApiError(409, "uniqueness_error", f"rrset {rid} already exists")
            sets[rid] = {"id": rid, "name": body.get("name"), "type": body.get("type"),
                         "ttl": body.get("ttl"), "labels": body.get("labels") or {},
                         "protection": {"change": False}, "records": _records(body), "zone": zone["id"]}
            self._txt_changed(zone, sets[rid])
            action = self._action("create_rrset", ("zone", zone["id"]))
            return 201, {"rrset": copy.deepcopy(sets[rid]), "action": action}
        if len(parts) >= 4 and parts[1] == "rrsets":
            rid = f"{parts[2]}/{parts[3]}"
            if rid not in sets:
                raise ApiError(404, "not_found", f"rrset {rid} not found")
            if len(parts) == 4 and method == "GET":
                return 200, {"rrset": copy.deepcopy(sets[rid])}
            if len(parts) == 4 and method == "DELETE":
                gone = sets.pop(rid)
                self._txt_changed(zone, {**gone, "records": []})
                return 200, {"action": self._action("delete_rrset", ("zone", zone["id"]))}
            if parts[4:] == ["actions", "set_records"] and method == "POST":
                sets[rid]["records"] = _records(body)
                self._txt_changed(zone, sets[rid])
                return 201, {"action": self._action("set_rrset_records", ("zone", zone["id"]))}
        raise ApiError(404, "not_found", f"no route zones/{'/'.join(parts)}")

    def _txt_changed(self, zone: dict, rrset: dict) -> None:
        if rrset["type"] != "TXT" or self.on_txt is None:
            return
        fqdn = zone["name"] if rrset["name"] == "@" else f"{rrset['name']}.{zone['name']}"
        self.on_txt(fqdn, [r["value"][1:-1] for r in rrset["records"]])

    # ---- resources
    def _create(self, name: str, body: dict) -> dict:
        rid = next(self.ids)
        if any(r["name"] == body.get("name") for r in self.res[name].values()):
            raise ApiError(409, "uniqueness_error", f"{_ONE[name]} name is already used")
        base = {"id": rid, "name": body.get("name"), "labels": body.get("labels") or {}, "created": _now()}
        if name == "ssh_keys":
            keys = {r["public_key"] for r in self.res[name].values()}
            if body["public_key"] in keys:
                raise ApiError(409, "uniqueness_error", "SSH key with the same fingerprint already exists")
            row = {**base, "public_key": body["public_key"], "fingerprint": _fingerprint(body["public_key"])}
        elif name == "firewalls":
            row = {**base, "rules": _rules(body.get("rules")), "applied_to": []}
            for target in body.get("apply_to") or []:
                row["applied_to"].append(target)
        elif name == "networks":
            row = {
                **base,
                "ip_range": body["ip_range"],
                "subnets": body.get("subnets") or [],
                "routes": [],
                "servers": [],
                "load_balancers": [],
                "protection": {"delete": False},
                "expose_routes_to_vswitch": False,
            }
        elif name in ("primary_ips", "floating_ips"):
            dc = _by_name(DATACENTERS, body.get("datacenter")) or DATACENTERS[0]
            if body.get("location"):
                dc = next(d for d in DATACENTERS if d["location"]["name"] == body["location"])
            ip = (
                f"127.{secrets.randbelow(200) + 50}.{secrets.randbelow(250) + 1}.{secrets.randbelow(250) + 2}"
                if name == "primary_ips"
                else f"198.51.100.{rid % 250 + 2}"
            )
            row = {
                **base,
                "type": body.get("type", "ipv4"),
                "ip": ip,
                "blocked": False,
                "dns_ptr": [{"ip": ip, "dns_ptr": f"static.{ip}.example"}],
                "protection": {"delete": False},
            }
            if name == "primary_ips":
                row |= {
                    "datacenter": dc,
                    "assignee_type": "server",
                    "assignee_id": body.get("assignee_id"),
                    "auto_delete": bool(body.get("auto_delete", False)),
                }
            else:
                row |= {
                    "home_location": dc["location"],
                    "server": body.get("server"),
                    "description": body.get("description"),
                }
        else:
            return self._create_server(base, body)
        self.res[name][rid] = row
        return {
            _ONE[name]: self._view(name, row),
            "action": self._action(f"create_{_ONE[name]}", (_ONE[name], rid)),
        }

    def _create_server(self, base: dict, body: dict) -> dict:
        stype = _by_ref(SERVER_TYPES, body["server_type"])
        image = _by_ref(IMAGES, body["image"])
        if stype is None or image is None:
            raise ApiError(422, "invalid_input", "unknown server type or image")
        loc = _by_ref(LOCATIONS, body.get("location") or "fsn1")
        if loc is None:
            raise ApiError(422, "invalid_input", "unknown location")
        dc = next(d for d in DATACENTERS if d["location"]["id"] == loc["id"])
        public = body.get("public_net") or {}
        pip_id = public.get("ipv4")
        if pip_id is None:  # an automatic primary IP, deleted with the server
            pip = self._create(
                "primary_ips", {"name": f"{base['name']}-auto", "datacenter": dc["name"], "auto_delete": True}
            )["primary_ip"]
            pip_id = pip["id"]
        pip = self.res["primary_ips"].get(pip_id)
        if pip is None or pip["assignee_id"] is not None:
            raise ApiError(422, "invalid_input", "primary IP not found or already assigned")
        rid = base["id"]
        pip["assignee_id"] = rid
        keys = [
            self.res["ssh_keys"][k]["public_key"]
            for k in body.get("ssh_keys") or []
            if k in self.res["ssh_keys"]
        ]
        for fw in body.get("firewalls") or []:
            self.res["firewalls"][fw["firewall"]]["applied_to"].append(
                {"type": "server", "server": {"id": rid}}
            )
        row = {
            **base,
            "status": "running",
            "server_type": stype,
            "datacenter": dc,
            "image": image,
            "ipv4_id": pip_id,
            "networks": list(body.get("networks") or []),
            "protection": {"delete": False, "rebuild": False},
            "backup_window": None,
            "rescue_enabled": False,
            "keys": keys,
        }
        self.res["servers"][rid] = row
        action = self._action("create_server", ("server", rid))
        start = self._action("start_server", ("server", rid))
        if self.on_server_create:
            # Booting takes a while, as at Hetzner: the start action runs until the hook returns.
            done = threading.Event()
            self.waits[start["id"]] = done
            view, hook = self._view("servers", row), self.on_server_create

            def boot() -> None:
                try:
                    hook(view, keys)
                except Exception as exc:
                    self.actions[start["id"]]["error"] = {"code": "server_error", "message": str(exc)[:300]}
                finally:
                    done.set()

            threading.Thread(target=boot, daemon=True, name=f"boot-{rid}").start()
        return {
            "server": self._view("servers", row),
            "action": action,
            "next_actions": [start],
            "root_password": None,
        }

    def _view(self, name: str, row: dict) -> dict:
        if name != "servers":
            return copy.deepcopy(row)
        pip = self.res["primary_ips"].get(row["ipv4_id"])
        firewalls = [
            {"id": fw["id"], "status": "applied"}
            for fw in self.res["firewalls"].values()
            if self._applies(fw, row)
        ]
        private = [
            {
                "network": n,
                "ip": f"10.0.0.{(row['id'] % 250) + 2}",
                "alias_ips": [],
                "mac_address": "86:00:00:00:00:01",
            }
            for n in row["networks"]
            if n in self.res["networks"]
        ]
        view = {
            k: copy.deepcopy(v)
            for k, v in row.items()
            if k not in ("ipv4_id", "networks", "keys") and not k.startswith("_")
        }
        view |= {
            "public_net": {
                "ipv4": None
                if pip is None
                else {
                    "id": pip["id"],
                    "ip": pip["ip"],
                    "blocked": False,
                    "dns_ptr": pip["dns_ptr"][0]["dns_ptr"],
                },
                "ipv6": None,
                "floating_ips": [
                    f["id"] for f in self.res["floating_ips"].values() if f["server"] == row["id"]
                ],
                "firewalls": firewalls,
            },
            "private_net": private,
            "iso": None,
            "locked": False,
            "outgoing_traffic": 0,
            "ingoing_traffic": 0,
            "included_traffic": row["server_type"]["included_traffic"],
            "volumes": [],
            "load_balancers": [],
            "primary_disk_size": row["server_type"]["disk"],
            "placement_group": None,
        }
        return view

    def _applies(self, fw: dict, server: dict) -> bool:
        for target in fw["applied_to"]:
            if target["type"] == "server" and target["server"]["id"] == server["id"]:
                return True
            if target["type"] == "label_selector" and _matches(
                server["labels"], target["label_selector"]["selector"]
            ):
                return True
        return False

    def _resource_action(self, name: str, row: dict, command: str, body: dict) -> dict:
        kind = _ONE[name]
        if command == "change_protection":
            for key in ("delete", "rebuild"):
                if body.get(key) is not None:
                    row.setdefault("protection", {})[key] = bool(body[key])
        elif command in ("poweron", "poweroff", "shutdown", "reboot", "reset"):
            row["status"] = "running" if command in ("poweron", "reboot", "reset") else "off"
        elif command == "attach_to_network":
            row["networks"].append(body["network"])
        elif command == "detach_from_network":
            row["networks"] = [n for n in row["networks"] if n != body["network"]]
        elif command in ("apply_to_resources", "remove_from_resources"):
            targets = [_target(t) for t in body.get("apply_to") or body.get("remove_from") or []]
            if command == "apply_to_resources":
                row["applied_to"] += [t for t in targets if t not in row["applied_to"]]
            else:
                row["applied_to"] = [t for t in row["applied_to"] if t not in targets]
            return {"actions": [self._action(command, (kind, row["id"]))]}
        elif command == "set_rules":
            row["rules"] = _rules(body.get("rules"))
            return {"actions": [self._action(command, (kind, row["id"]))]}
        elif command == "add_subnet":
            row["subnets"].append({"gateway": "10.0.0.1", **body})
        elif command == "delete_subnet":
            row["subnets"] = [s for s in row["subnets"] if s["ip_range"] != body["ip_range"]]
        elif command == "assign" and name == "primary_ips":
            row["assignee_id"] = body["assignee_id"]
        elif command == "unassign" and name == "primary_ips":
            row["assignee_id"] = None
        elif command == "assign" and name == "floating_ips":
            row["server"] = body["server"]
        elif command == "unassign" and name == "floating_ips":
            row["server"] = None
        elif command == "enable_backup":
            row["backup_window"] = "22-02"
        elif command == "disable_backup":
            row["backup_window"] = None
        else:
            raise ApiError(404, "not_found", f"unknown action {command}")
        return {"action": self._action(command, (kind, row["id"]))}

    def _action(self, command: str, resource: tuple[str, int]) -> dict:
        aid = next(self.ids)
        # "running" first, "success" when read back: the modules' waiting is exercised, not skipped.
        action = {
            "id": aid,
            "command": command,
            "status": "running",
            "progress": 0,
            "started": _now(),
            "finished": None,
            "resources": [{"id": resource[1], "type": resource[0]}],
            "error": None,
        }
        self.actions[aid] = action
        return copy.deepcopy(action)

    def _action_get(self, aid: int) -> dict:
        action = self.actions.get(aid)
        if action is None:
            raise ApiError(404, "not_found", "action not found")
        wait = self.waits.get(aid)
        if wait is not None and not wait.is_set():
            return copy.deepcopy(action)
        failed = action["error"] is not None
        action.update(
            status="error" if failed else "success", progress=100, finished=action["finished"] or _now()
        )
        return copy.deepcopy(action)

    def _pricing(self) -> dict:
        return {
            "currency": "EUR",
            "vat_rate": "19.00",
            "image": {"price_per_gb_month": {"net": "0.0119", "gross": "0.0142"}},
            "floating_ip": {"price_monthly": {"net": "3.00", "gross": "3.57"}},
            "floating_ips": [],
            "primary_ips": [],
            "server_backup": {"percentage": "20.00"},
            "traffic": {"price_per_tb": {"net": "1.00", "gross": "1.19"}},
            "volume": {"price_per_gb_month": {"net": "0.0440", "gross": "0.0524"}},
            "load_balancer_types": [],
            "server_types": [{"id": t["id"], "name": t["name"], "prices": t["prices"]} for t in SERVER_TYPES],
        }


def _pipe(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways until either side closes. A selector, not select(): a long test run's process
    holds descriptors above select()'s limit of 1024 ("filedescriptor out of range")."""
    with selectors.DefaultSelector() as sel:
        sel.register(a, selectors.EVENT_READ, b)
        sel.register(b, selectors.EVENT_READ, a)
        while True:
            ready = sel.select(60)
            if not ready:
                return
            for key, _ in ready:
                data = key.fileobj.recv(65536)
                if not data:
                    return
                key.data.sendall(data)


def _records(body: dict) -> list[dict]:
    """An RRSet's records as the API stores them; a TXT value must be a quoted string, as in a zone file."""
    out = [{"value": r.get("value"), "comment": r.get("comment")} for r in body.get("records") or []]
    for r in out:
        value = r["value"]
        if not isinstance(value, str) or (body.get("type") == "TXT" and not (
                len(value) >= 2 and value[0] == value[-1] == '"')):
            raise ApiError(422, "invalid_input", f"invalid record value {value!r}")
    return out


def _rules(rules: list[dict] | None) -> list[dict]:
    """Rules as the API returns them: every field present."""
    keys = {"direction": "in", "protocol": "tcp", "port": None, "source_ips": [], "destination_ips": [],
            "description": None}
    return [{k: r.get(k, d) if r.get(k) is not None else d for k, d in keys.items()} for r in rules or []]


def _target(t: dict) -> dict:
    if t["type"] == "label_selector":
        return {"type": "label_selector", "label_selector": {"selector": t["label_selector"]["selector"]}}
    return {"type": "server", "server": {"id": t["server"]["id"]}}


def _singular(name: str) -> str:
    return {
        "locations": "location",
        "server_types": "server_type",
        "images": "image",
        "datacenters": "datacenter",
    }[name]


def _by_name(rows: list[dict], name: Any) -> dict | None:
    return next((r for r in rows if r["name"] == name), None)


def _by_ref(rows: list[dict], ref: Any) -> dict | None:
    """The API takes a name or an id where it takes a reference."""
    return next((r for r in rows if r["name"] == ref or r["id"] == ref or str(r["id"]) == str(ref)), None)


def _filter(rows: list[dict], query: dict) -> list[dict]:
    out = []
    for r in rows:
        if "name" in query and r.get("name") != query["name"]:
            continue
        if "label_selector" in query and not _matches(r.get("labels") or {}, query["label_selector"]):
            continue
        if "architecture" in query and r.get("architecture") not in (None, query["architecture"]):
            continue
        if "type" in query and r.get("type") != query["type"]:
            continue
        if "ip" in query and r.get("ip") != query["ip"]:
            continue
        out.append(r)
    return out


def _meta(total: int) -> dict:
    return {
        "meta": {
            "pagination": {
                "page": 1,
                "per_page": 50,
                "previous_page": None,
                "next_page": None,
                "last_page": 1,
                "total_entries": total,
            }
        }
    }


def _fingerprint(public_key: str) -> str:
    import base64
    import hashlib

    try:
        blob = base64.b64decode(public_key.split()[1])
    except (IndexError, ValueError):
        raise ApiError(422, "invalid_input", "invalid public key") from None
    digest = hashlib.md5(blob).hexdigest()  # Hetzner's fingerprint format
    return ":".join(digest[i : i + 2] for i in range(0, 32, 2))


def serve_podman_nodes(fake: FakeHcloud, workdir: Any, provisioned: bool = True) -> dict[str, Any]:
    """Make the fake's servers podman nodes: a created server boots (from the provisioned image unless
    `provisioned` is false) on its primary IP's loopback address with the server's SSH keys for root;
    a deleted one is removed. Returns {server name: rig Node}, kept up to date."""
    import json as _json

    from tests.rig import nodes as rig
    from tests.rig import provisioned as prov

    booted: dict[str, Any] = {}

    def create(server: dict, keys: list[str]) -> None:
        ip = server["public_net"]["ipv4"]["ip"]
        name = f"pressluft-node-hc{secrets.token_hex(4)}"
        if provisioned:
            node = prov.start(workdir, bind=ip, name=name)
            identity = node.exec("cat", "/etc/pressluft/node.yml").stdout
            node.exec(
                "install",
                "-m",
                "0640",
                "/dev/stdin",
                "/etc/pressluft/node.yml",
                input=identity.replace(_json.dumps(name), _json.dumps(server["name"])),
            )
        else:
            node = rig.start_node(workdir, bind=ip, name=name)
        # What Hetzner's cloud-init does with the server's SSH keys.
        node.exec(
            "install",
            "-D",
            "-m",
            "0600",
            "/dev/stdin",
            "/root/.ssh/authorized_keys",
            input="".join(k.strip() + "\n" for k in keys),
        )
        booted[server["name"]] = node
        with fake.lock:  # where the floating IPs assigned to this server are routed
            if server["id"] in fake.res["servers"]:
                fake.res["servers"][server["id"]]["_http"] = (ip, node.http_port)

    def delete(server: dict) -> None:
        node = booted.pop(server["name"], None)
        if node is not None:
            rig.stop_nodes([node])

    fake.on_server_create, fake.on_server_delete = create, delete
    return booted

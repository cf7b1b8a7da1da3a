"""Hetzner Cloud through the `hcloud` library: token validation and the server catalog.

Servers themselves are created by playbooks/node_create.yml with hetzner.hcloud's modules; this module
only reads. The token is passed in and never put into an exception or a return value.
"""

from __future__ import annotations

from typing import Any

from pressluft_lib.errors import ConfigError, ValidationError

DEFAULT_ENDPOINT = "https://api.hetzner.cloud/v1"
TIMEOUT = 15  # seconds per request: a CLI call must not hang on an unreachable API


def _client(token: str, endpoint: str):
    from hcloud import Client  # here: ~0.3 s of import the other commands never need

    return Client(token=token, api_endpoint=endpoint, application_name="pressluft", timeout=TIMEOUT)


def _explain(exc: Exception, endpoint: str) -> Exception:
    from hcloud import APIException

    if isinstance(exc, APIException):
        if exc.code == "unauthorized":
            return ValidationError(
                "the Hetzner Cloud API refused the token (unauthorized): check it in the Cloud Console, "
                "Security > API tokens",
                details={"api_code": "unauthorized"},
            )
        return ConfigError(
            f"the Hetzner Cloud API answered {exc.code}: {exc.message}", details={"api_code": str(exc.code)}
        )
    return ConfigError(f"the Hetzner Cloud API at {endpoint} cannot be reached: {type(exc).__name__}")


def validate_token(token: str, endpoint: str) -> None:
    """One authenticated read; ValidationError if the API refuses the token."""
    if not token or any(c.isspace() for c in token) or len(token) > 256:
        raise ValidationError("the API token must be one line of at most 256 characters without spaces")
    try:
        _client(token, endpoint).locations.get_all()
    except Exception as exc:  # APIException, requests' connection errors
        raise _explain(exc, endpoint) from None


def catalog(token: str, endpoint: str) -> dict[str, Any]:
    """Server types (with monthly gross prices per location), locations and system images."""
    try:
        client = _client(token, endpoint)
        types = client.server_types.get_all()
        locations = client.locations.get_all()
        images = client.images.get_all(type="system")
        # hcloud 2.x has no pricing client: its generic request (auth, retries, errors) reads /pricing.
        pricing = client.request("GET", "/pricing").get("pricing") or {}
    except Exception as exc:
        raise _explain(exc, endpoint) from None
    monthly = {
        t["name"]: {p["location"]: p["price_monthly"]["gross"] for p in t.get("prices") or []}
        for t in pricing.get("server_types") or []
    }
    type_rows = []
    for t in types:
        prices = monthly.get(t.name) or {p["location"]: p["price_monthly"]["gross"] for p in t.prices or []}
        type_rows.append(
            {
                "name": t.name,
                "cores": t.cores,
                "memory_gb": t.memory,
                "disk_gb": t.disk,
                "architecture": t.architecture,
                # deprecated everywhere it is offered (hcloud 2.x: per location)
                "deprecated": bool(t.locations) and all(loc.deprecation for loc in t.locations),
                "monthly_eur": prices,
            }
        )
    return {
        "currency": pricing.get("currency") or "EUR",
        "server_types": type_rows,
        "locations": [
            {"name": loc.name, "city": loc.city, "country": loc.country, "network_zone": loc.network_zone}
            for loc in locations
        ],
        "images": sorted({i.name for i in images if i.name and not i.deprecation}),
    }

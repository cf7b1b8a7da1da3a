"""ControlPlane methods for control-plane settings (pressluft_lib/settings.py, docs/settings.md)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from pressluft_lib import settings as st
from pressluft_lib.errors import NotFound, ValidationError
from pressluft_lib.services.base import ServiceBase
from pressluft_lib.storage.models import Provider


def _rows(values: st.Settings) -> list[dict[str, Any]]:
    return [{"name": n, "value": getattr(values, n), "meaning": st.DESCRIPTIONS[n]} for n in st.NAMES]


class SettingsMixin(ServiceBase):
    """ControlPlane methods for settings."""

    def settings_show(self) -> list[dict[str, Any]]:
        with self.session_factory() as session:
            return _rows(st.load(session))

    def settings_set(self, name: str, value: str) -> dict[str, Any]:
        st.check_name(name)
        with self._mutation("settings.set", f"setting:{name}", {"value": str(value)[:253]}) as (session, _a):
            merged = st.put(session, name, value)
            if name == "dns_provider":
                row = session.scalar(select(Provider).where(Provider.name == merged.dns_provider))
                if row is None:
                    raise NotFound(f"provider {merged.dns_provider!r} does not exist (provider add)",
                                   details={"provider": merged.dns_provider})
                if row.kind not in st.DNS01_KINDS:
                    raise ValidationError(f"provider {row.name} ({row.kind}) has no DNS-01 support; "
                                          f"supported: {', '.join(st.DNS01_KINDS)}")
            return {"name": name, "value": getattr(merged, name)}

    def settings_unset(self, name: str) -> dict[str, Any]:
        st.check_name(name)
        with self._mutation("settings.unset", f"setting:{name}") as (session, _a):
            st.remove(session, name)
            return {"name": name, "value": None}

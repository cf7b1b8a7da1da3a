"""Use cases the CLI (and any other front end) calls. Every mutating call writes an audit_log row.

Inputs are validated (schemas) before anything is written; a refused call changes nothing except
its audit row (result = the error code). Results are plain JSON-ready dicts (services/views.py).
ControlPlane is one mixin per family (services/<family>.py) over ServiceBase (services/base.py).
"""

from __future__ import annotations

from pressluft_lib.services.backups import BackupsMixin
from pressluft_lib.services.cache import CacheMixin
from pressluft_lib.services.domains import DomainsMixin
from pressluft_lib.services.env_delete import EnvDeleteMixin
from pressluft_lib.services.environments import EnvironmentsMixin
from pressluft_lib.services.imports import ImportsMixin
from pressluft_lib.services.jobs import JobsMixin
from pressluft_lib.services.nodequeries import NodeQueriesMixin
from pressluft_lib.services.nodes import NodesMixin
from pressluft_lib.services.placement import PlacementMixin
from pressluft_lib.services.promote import PromoteMixin
from pressluft_lib.services.providers import ProvidersMixin
from pressluft_lib.services.releases import ReleasesMixin
from pressluft_lib.services.rotation import RotationMixin
from pressluft_lib.services.settings import SettingsMixin
from pressluft_lib.services.sites import SitesMixin
from pressluft_lib.services.updates import UpdatesMixin


class ControlPlane(
    NodesMixin, SitesMixin, EnvironmentsMixin, JobsMixin, UpdatesMixin, PromoteMixin, EnvDeleteMixin,
    ImportsMixin,
    BackupsMixin, ReleasesMixin,
    RotationMixin,
    NodeQueriesMixin,
    DomainsMixin,
    ProvidersMixin,
    PlacementMixin,
    CacheMixin,
    SettingsMixin,
):
    """One control-plane database and the actor whose calls are audited."""

"""The control plane (pressluft_lib.names) and the node modules (module_utils/_names.py) validate names
separately (the collection must not import the library); they must agree on every input."""

from __future__ import annotations

import pytest
from ansible_collections.pressluft.wordpress.plugins.module_utils import _names as mod

from pressluft_lib import names as lib
from pressluft_lib.errors import ValidationError

CANDIDATES = [
    "a", "ab", "shop", "Shop", "shop1", "1shop", "sh-op", "sh_op", "sh.op", "shop\n", " shop", "",
    "a" * 11, "a" * 12, "a" * 20, "a" * 21, "root", "mysql", "www-data", "nginx", "redis", "admin",
    "production", "staging", "shop;rm", "$(id)", "ünï", "pressluft", "postgres", "x1",
]
DOMAINS = [
    "demo.localhost", "example.com", "a.b.c.example.org", "Example.com", "example", "-a.com", "a-.com",
    "a..com", "exa_mple.com", "x" * 63 + ".com", "x" * 64 + ".com", ("a" * 60 + ".") * 5 + "com",
    "shop.example.com\n", "",
]


def _accepts(fn, exc, value) -> bool:
    try:
        fn(value)
    except exc:
        return False
    return True


@pytest.mark.parametrize("value", CANDIDATES)
def test_site_rules_agree(value):
    ours = _accepts(lib.validate_site, ValidationError, value)
    assert ours == _accepts(mod.validate_site, ValueError, value)


@pytest.mark.parametrize("value", CANDIDATES)
def test_env_rules_agree(value):
    assert _accepts(lib.validate_env, ValidationError, value) == _accepts(mod.validate_env, ValueError, value)


@pytest.mark.parametrize("value", DOMAINS)
def test_domain_rules_agree(value):
    assert _accepts(lib.validate_domain, ValidationError, value) == _accepts(mod.validate_domain, ValueError,
                                                                             value)


NODES = ["web1", "all", "ungrouped", "localhost", "pressluft", "web-1.example", "Web1", "web_1", "-a",
         "a" * 63, "a" * 64, "127.0.0.1", "", "all\n"]
PAIRS = [("information", "schema"), ("performance", "schema"), ("information", "schemas"), ("shop", "sys"),
         ("shop", "production")]


@pytest.mark.parametrize("value", NODES)
def test_node_rules_agree(value):
    ours = _accepts(lib.validate_node, ValidationError, value)
    assert ours == _accepts(mod.validate_node, ValueError, value)


@pytest.mark.parametrize(("site", "env"), PAIRS)
def test_reserved_pairs_agree(site, env):
    ours = _accepts(lambda _: lib.validate_env_pair(site, env), ValidationError, None)
    assert ours == _accepts(lambda _: mod.env_names(site, env), ValueError, None)


def test_reserved_names_are_refused():
    for node in ("all", "ungrouped", "localhost", "pressluft"):
        assert not _accepts(lib.validate_node, ValidationError, node)
    for pair in (("information", "schema"), ("performance", "schema")):
        assert not _accepts(lambda p: lib.env_user(*p), ValidationError, pair)
        assert not _accepts(lambda p: mod.env_names(*p), ValueError, pair)


def test_env_user_agrees():
    assert lib.env_user("shop", "staging") == mod.env_names("shop", "staging")["user"] == "shop_staging"


def test_some_inputs_are_refused():
    # Guards against both implementations accepting everything.
    assert not _accepts(mod.validate_site, ValueError, "root")
    assert not _accepts(lib.validate_site, ValidationError, "sh;op")


def test_release_marks_and_secret_names_are_the_control_planes():
    """One name per concept: the node's release marks are release states of the library, and the admin
    password the node keeps has the library's secret name."""
    from ansible_collections.pressluft.wordpress.plugins.module_utils import _releases, _secrets
    from ansible_collections.pressluft.wordpress.plugins.modules import release_switch

    from pressluft_lib.services.sites import ENV_SECRETS
    from pressluft_lib.states import ReleaseState

    states = {s.value for s in ReleaseState}
    assert set(_releases.MARKS) <= states
    assert set(release_switch.OPS) - {"rollback", "good", "pruned"} <= states  # building .. live
    assert set(ENV_SECRETS) <= set(_secrets.PASSWORD_KEYS)
    assert mod.DEFAULT_ENV == lib.DEFAULT_ENV

"""domain_dns_check's comparison and the stub resolver's server parsing (the network part runs against
Pebble's challenge test server in tests/integration/test_domains.py)."""

from __future__ import annotations

import pytest
from ansible_collections.pressluft.wordpress.plugins.module_utils import _dns
from ansible_collections.pressluft.wordpress.plugins.modules.domain_dns_check import check

NODE = ["203.0.113.10", "2001:db8::10"]


def test_names_resolving_only_to_the_node_pass():
    records, bad = check(["a.example"], NODE, lambda n: (["203.0.113.10"], ["2001:db8::10"]))
    assert bad == [] and records == {"a.example": {"A": ["203.0.113.10"], "AAAA": ["2001:db8::10"]}}


@pytest.mark.parametrize(("a", "aaaa", "expected"), [
    ([], [], "a.example: no A or AAAA record"),
    (["198.51.100.1"], [], "a.example resolves to A 198.51.100.1 (elsewhere)"),
    (["203.0.113.10"], ["2001:db8::99"],
     "a.example resolves to A 203.0.113.10, AAAA 2001:db8::99 (elsewhere)"),
    (["203.0.113.10", "198.51.100.1"], [],
     "a.example resolves to A 203.0.113.10, A 198.51.100.1 (elsewhere)"),
])
def test_mismatches_name_what_resolves_where(a, aaaa, expected):
    assert check(["a.example"], NODE, lambda n: (a, aaaa))[1] == [expected]


def test_resolver_addresses_are_parsed_and_never_names():
    assert _dns.parse_server("127.0.0.1") == ("127.0.0.1", 53)
    assert _dns.parse_server("127.0.0.1:8053") == ("127.0.0.1", 8053)
    assert _dns.parse_server("[::1]:5353") == ("::1", 5353)
    for bad in ("dns.example:53", "127.0.0.1:0", "127.0.0.1:99999", "1.2.3.4:x"):
        with pytest.raises(ValueError):
            _dns.parse_server(bad)

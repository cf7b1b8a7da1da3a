"""The pressluft.wordpress.env_names and valid_domain filters, in a real playbook and in process."""

from __future__ import annotations

import json

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.pressluft.wordpress.plugins.filter import env_names as filters
from ansible_collections.pressluft.wordpress.plugins.module_utils._names import env_names

from tests.rig.ansible import run_playbook

BAD_DOMAINS = "{{ ['ok.example.com', 'Bad.example'] | pressluft.wordpress.valid_domain }}"


def test_filters_in_a_playbook(tmp_path):
    tasks = [
        {"name": "Names", "ansible.builtin.set_fact": {
            "names": "{{ 'shop' | pressluft.wordpress.env_names('staging') }}",
            "default_env": "{{ ('shop' | pressluft.wordpress.env_names).root }}",
            "domains": "{{ ['shop.example.com', 'shop.localhost'] | pressluft.wordpress.valid_domain }}"}},
        {"name": "Show", "ansible.builtin.debug": {"msg": "{{ [names, default_env, domains] }}"}},
        {"name": "Reserved site", "ignore_errors": True,
         "ansible.builtin.debug": {"msg": "{{ 'root' | pressluft.wordpress.env_names }}"}},
        {"name": "Bad domain", "ignore_errors": True,
         "ansible.builtin.debug": {"msg": BAD_DOMAINS}},
    ]
    book = tmp_path / "filters.yml"
    book.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    local = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}
    inventory = {"all": {"hosts": {"localhost": local}}}
    r = run_playbook(book, inventory, tmp_path)
    assert r.rc == 0, r.explain()
    results = [t["hosts"]["localhost"] for t in json.loads(r.stdout)["plays"][0]["tasks"]]
    names, default_root, domains = results[1]["msg"]
    assert names == env_names("shop", "staging")
    assert default_root == "/var/www/sites/shop/production"
    assert domains == ["shop.example.com", "shop.localhost"]
    assert results[2]["failed"] and "site name 'root' is reserved" in results[2]["msg"], results[2]
    assert results[3]["failed"] and "invalid domain 'Bad.example'" in results[3]["msg"], results[3]


def test_filter_functions():
    assert filters.env_names("blog")["user"] == "blog_production"
    assert filters.valid_domain("a.example") == "a.example"
    for call in (lambda: filters.env_names("blog", "Prod"), lambda: filters.env_names("x"),
                 lambda: filters.valid_domain("localhost"), lambda: filters.valid_domain(["a.b", "a..b"])):
        with pytest.raises(AnsibleFilterError, match=r"pressluft\.wordpress\."):
            call()
    assert set(filters.FilterModule().filters()) == {"env_names", "valid_domain"}

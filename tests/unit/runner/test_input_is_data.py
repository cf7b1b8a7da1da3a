"""Job input is data: nothing a user typed (or the database holds) is templated by Ansible.

Every free-text field goes from the CLI through the library, the queue and the runner into a real
ansible-runner run. A Jinja payload must come back literally, and a `lookup('pipe', ...)` canary must
never write its file (issue 12, finding 1: the worker ran `id > CANARY` as root).
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from pressluft_cli.main import cli

from pressluft_lib import jobtypes, queue
from pressluft_lib.execution import runner
from pressluft_lib.storage.models import Environment, Site

from .conftest import PLAYBOOKS

ECHO = PLAYBOOKS / "echo.yml"


def canary(tmp_path: Path, name: str) -> tuple[Path, str]:
    path = tmp_path / f"CANARY-{name}"
    return path, "{{ lookup('pipe','id>" + str(path) + "') }}"


def cli_run(cp, *args: str, input: str | None = None) -> dict:
    env = {"PRESSLUFT_DB": cp.url, "PRESSLUFT_HOME": str(cp.data_dir)}
    result = CliRunner(env=env).invoke(cli, [*args, "--json"], input=input, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def make_env(cp, site: str = "shop") -> None:
    with cp.sf.begin() as s:
        row = Site(name=site, node_id=1, state="active")
        s.add(row)
        s.flush()
        s.add(Environment(site_id=row.id, name="production", state="active"))


def run_echo(cp, tmp_path, monkeypatch, job_id: int) -> dict:
    """Run job `job_id` with every job type's playbook replaced by echo.yml; what it saw."""
    book = tmp_path / "echo-playbooks"
    book.mkdir(exist_ok=True)
    for name in jobtypes.JOB_TYPES:
        link = book / f"{name}.yml"
        if not link.exists():
            link.symlink_to(ECHO)
    seen: dict = {}

    def keep(_session, _job, artifacts) -> None:
        seen.update(artifacts)

    for name, jt in list(jobtypes.JOB_TYPES.items()):
        monkeypatch.setitem(jobtypes.JOB_TYPES, name, replace(jt, before=None, after=keep))
    job = queue.claim(cp.sf, "w1")
    assert job is not None and job.id == job_id
    job = runner.execute(cp.sf, job, "w1", data_dir=cp.data_dir, playbook_dir=book)
    assert job.state == "succeeded", job.error_message
    return seen["echo"]


def test_the_real_health_check_playbook_never_runs_a_marker(cp, tmp_path):
    """Finding 1 as reported: `pressluft health shop --marker "{{ lookup('pipe','id > CANARY') }}"`,
    then `pressluft worker --once` (the collection's own health_check.yml on the local node)."""
    make_env(cp)
    path, payload = canary(tmp_path, "marker")
    url_path, url_payload = canary(tmp_path, "url")
    url = "/" + url_payload.replace(" ", "")  # a health URL is a path without spaces
    cli_run(cp, "health", "shop", "--marker", payload, "--url", url)
    env = {"PRESSLUFT_DB": cp.url, "PRESSLUFT_HOME": str(cp.data_dir)}
    result = CliRunner(env=env).invoke(cli, ["worker", "--once"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "health_check" in result.output
    assert not path.exists(), "the health marker was templated on the worker"
    assert not url_path.exists(), "the health URL was templated on the worker"


@pytest.mark.parametrize(
    ("field", "command"),
    [
        ("pressluft_health_marker", ["health", "shop", "--marker", "{payload}"]),
        ("pressluft_health_urls", ["health", "shop", "--url", "/{nospace}"]),
        ("pressluft_health_marker", ["deploy", "shop", "--git", "https://example.com/r.git", "--marker",
                                     "{payload}"]),
        ("pressluft_health_urls", ["deploy", "shop", "--git", "https://example.com/r.git", "--health-url",
                                   "/{nospace}"]),
        ("pressluft_release_git", ["deploy", "shop", "--git", "https://example.com/{nospace}"]),
    ],
)
def test_every_free_text_field_reaches_ansible_literally(cp, tmp_path, monkeypatch, field, command):
    make_env(cp)
    path, payload = canary(tmp_path, field)
    args = [a.format(payload=payload, nospace=payload.replace(" ", "")) for a in command]
    job_id = cli_run(cp, *args)["job_id"]
    seen = run_echo(cp, tmp_path, monkeypatch, job_id)
    given = next(a for a in args if "CANARY" in a)
    value = seen[field]
    assert (value[0] if isinstance(value, list) else value) == given, "the value arrived changed"
    assert not path.exists(), f"{field} was templated"


@pytest.mark.parametrize(
    ("field", "command"),
    [
        ("pressluft_wordpress_title", ["site", "create", "blog", "--node", "local", "--title", "{payload}"]),
        ("node_php_default_version",
         ["node", "provision", "local", "--var", "node_php_default_version={payload}"]),
        ("node_wpcli_version", ["node", "provision", "local", "--var", "node_wpcli_version={payload}"]),
    ],
)
def test_titles_and_var_values_reach_ansible_literally(cp, tmp_path, monkeypatch, field, command):
    path, payload = canary(tmp_path, field)
    args = [a.replace("{payload}", payload) for a in command]
    job_id = cli_run(cp, *args)["job_id"]
    seen = run_echo(cp, tmp_path, monkeypatch, job_id)
    assert seen[field] == payload
    assert not path.exists(), f"{field} was templated"


def test_backup_repository_reaches_ansible_literally(cp, tmp_path, monkeypatch):
    make_env(cp)
    path, payload = canary(tmp_path, "repo")
    url = "/srv/" + payload.replace(" ", "")
    cli_run(cp, "backup", "repo", "set", "--url", url, "--password-stdin", input="pw-123456\n")
    job_id = cli_run(cp, "backup", "create", "shop")["job_id"]
    assert run_echo(cp, tmp_path, monkeypatch, job_id)["pressluft_restic_repository"] == url
    assert not path.exists(), "the repository URL was templated"


def test_jinja_arrives_as_text_not_as_its_result(cp, tmp_path, monkeypatch):
    """`{{ 7*7 }}` is the five characters a user typed, never 49 (nor the int 49)."""
    make_env(cp)
    job_id = cli_run(cp, "health", "shop", "--marker", "{{ 7*7 }}")["job_id"]
    assert run_echo(cp, tmp_path, monkeypatch, job_id)["pressluft_health_marker"] == "{{ 7*7 }}"


def test_database_values_in_host_variables_are_not_templated(cp, tmp_path, monkeypatch):
    """A tampered control-plane row (here a node's SSH user and provider) stays text in the inventory."""
    from sqlalchemy import update

    from pressluft_lib.storage.models import Node

    path, payload = canary(tmp_path, "hostvar")
    with cp.sf.begin() as s:
        s.execute(update(Node).where(Node.name == "local").values(provider=payload))
    with cp.sf.begin() as s:
        job_id = queue.enqueue(s, "tiny", node="local").id
    seen = run_echo(cp, tmp_path, monkeypatch, job_id)
    assert seen["pressluft_provider"] == payload
    assert not path.exists(), "a database value was templated"
    assert os.path.exists(cp.db_file)


@pytest.mark.parametrize("name", ["health_check", "site_create"])
def test_playbook_entry_refuses_role_internal_variables(tmp_path, name):
    """Plain ansible-playbook/AWX users too: extra vars that beat the roles' parameters fail the first
    play (on localhost), before a node is touched."""
    from pressluft_lib.execution import ansible_exec

    events: list[dict] = []
    outcome = ansible_exec.run_playbook(
        name,
        data_dir=tmp_path,
        inventory={"all": {"hosts": {"n1": {"ansible_connection": "local"}}}},
        extravars={"pressluft_target": "n1", "pressluft_site": "shop", "site_env_site": "other",
                   "health_check_host": "evil.example"},
        on_event=events.append,
    )
    assert outcome.state == "failed"
    failed = [e for e in events if e.get("status") == "failed"]
    assert failed[0]["task"] == "Refuse role-internal variables from outside", failed
    assert "site_env_site" in failed[0]["msg"] and "health_check_host" in failed[0]["msg"]
    assert not [e for e in events if e.get("host") == "n1"], "the node was never touched"


def test_an_empty_string_arrives_empty_not_as_none(cp, tmp_path, monkeypatch):
    """ansible-core 2.19 loads `!unsafe ""` as None, which fails `is match` and `length` (node create
    without --network failed its input check); an empty string has nothing to template, so it goes plain."""
    make_env(cp)
    with cp.sf.begin() as s:
        payload = {"pressluft_floating_ip": "", "pressluft_api_endpoint": {"nested": ["", "x"]}}
        job = queue.enqueue(s, "site_ip", site="shop", env="production", payload=payload)
        job_id = job.id
    seen = run_echo(cp, tmp_path, monkeypatch, job_id)
    assert seen["pressluft_floating_ip"] == ""
    assert seen["pressluft_api_endpoint"] == {"nested": ["", "x"]}

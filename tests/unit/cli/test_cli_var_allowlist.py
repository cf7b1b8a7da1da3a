"""`--var` sets only what the job type allows (issue 12, finding 2): a refused call writes nothing but
its audit row, and the runner and the playbooks refuse such variables again at their own boundary."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import update

from pressluft_lib.storage import db
from pressluft_lib.storage.models import Job

from .dbsnap import db_snapshot
from .test_cli_backups import run
from .test_cli_backups import sites as sites

REFUSED = [
    # finding 2: another site's removal under this job's lock and token
    ["site", "create", "shop8", "--node", "web1", "--var", "site_env_site=shop",
     "--var", "site_env_state=absent", "--var", "site_env_fencing_token=999999"],
    ["site", "create", "shop8", "--node", "web1", "--var", "pressluft_site=shop"],  # control-plane key
    ["site", "create", "shop8", "--node", "web1", "--var", "pressluft_wordpress_title=x"],  # now --title
    ["site", "create", "shop8", "--node", "web1", "--var", "ansible_python_interpreter=/tmp/evil"],
    ["node", "provision", "web1", "--var", "ansible_ssh_common_args=-o ProxyCommand=touch /tmp/x"],
    ["node", "provision", "web1", "--var", "ansible_python_interpreter=/tmp/evil"],
    ["node", "provision", "web1", "--var", "pressluft_target=all"],
    ["node", "provision", "web1", "--var", "pressluft_hardening_enabled=false"],  # now --no-hardening
    ["node", "provision", "web1", "--var", "node_hardening_allow_local=true"],  # not in the allowlist
    ["node", "provision", "web1", "--var", "anything_else=1"],
    ["node", "provision", "web1", "--var", "node_php_default_version=8.2\nx"],  # one line only
]


@pytest.mark.parametrize("args", REFUSED, ids=lambda a: a[-1][:40])
def test_refused_variables_write_nothing(sites, args):
    before = db_snapshot(sites)
    result = run(*args, "--json", ok=False)
    assert result.exit_code == 2, result.output
    assert json.loads(result.stdout)["error"]["code"] == "invalid_input"
    after = db_snapshot(sites)
    audit_before, audit_after = before.pop("audit_log"), after.pop("audit_log")
    assert after == before, "no job, no row"
    assert len(audit_after) - len(audit_before) in (0, 1), "at most the refusal itself is audited"


def test_allowed_variables_and_options_reach_the_payload(sites, tmp_path):
    phar = tmp_path / "wp"
    phar.write_text("#!/bin/sh\n")
    made = json.loads(run("node", "provision", "web1", "--var", "node_php_default_version=8.2",
                          "--no-hardening", "--wpcli-src", str(phar), "--wpcli-sha512", "", "--json").stdout)
    shown = json.loads(run("jobs", "show", str(made["job_id"]), "--json").stdout)
    assert shown["payload"] == {"node_php_default_version": "8.2", "pressluft_hardening_enabled": False,
                                "node_wpcli_src": str(phar), "node_wpcli_sha512": ""}


def test_site_options(sites, tmp_path, wordpress_file):
    archive = wordpress_file
    made = json.loads(run("site", "create", "shop9", "--node", "web1", "--wordpress", str(archive),
                          "--title", "{{ 7*7 }} Shop", "--admin-user", "boss",
                          "--admin-email", "boss@example.com", "--json").stdout)
    payload = json.loads(run("jobs", "show", str(made["job_id"]), "--json").stdout)["payload"]
    assert payload == {"pressluft_wordpress_src": str(archive), "pressluft_wordpress_version": "6.1.9",
                       "pressluft_wordpress_title": "{{ 7*7 }} Shop",
                       "pressluft_wordpress_admin_user": "boss",
                       "pressluft_wordpress_admin_email": "boss@example.com"}
    for bad in (["--admin-email", "not-an-address"], ["--title", "two\nlines"], ["--admin-user", "a b"],
                ["--wordpress", str(tmp_path / "missing.tgz")], ["--wordpress", "https://x.org/w.tgz"]):
        assert run("site", "create", "shop10", "--node", "web1", *bad, ok=False).exit_code == 2, bad


def test_the_runner_refuses_a_payload_written_past_the_queue(sites):
    """A job row changed in the database (not through enqueue) never runs with a refused variable."""
    from pressluft_lib import queue
    from pressluft_lib.execution import runner

    made = json.loads(run("node", "provision", "web1", "--json").stdout)
    sf = db.session_factory(sites)
    with sf.begin() as s:
        s.execute(update(Job).where(Job.id == made["job_id"]).values(
            payload={"ansible_ssh_common_args": "-o ProxyCommand=touch /tmp/pwned"}))
    job = queue.claim(sf, "w1")
    assert job.id == made["job_id"]
    done = runner.execute(sf, job, "w1")
    assert (done.state, done.error_code) == ("failed", "invalid_input")
    assert "ansible_ssh_common_args" in done.error_message

"""`pressluft env auth SITE/ENV --user NAME [--password-stdin] | --off` through Click's CliRunner on a real
SQLite control plane: the payload carries no password, the secret store does (until auth is off), and bad
input exits 2 with the database unchanged."""

from __future__ import annotations

import json

import pytest

from pressluft_lib.names import env_secret_scope
from pressluft_lib.storage import db
from pressluft_lib.storage.models import Job, Secret
from pressluft_lib.storage.secret_store import SecretStore
from tests.unit.cli.dbsnap import db_snapshot
from tests.unit.cli.test_cli_backups import finish_next, js, run, sites  # noqa: F401  (fixture)


@pytest.fixture
def staging(sites):  # noqa: F811
    js("env", "create", "shop/staging")
    finish_next(sites)
    return sites


def password(url: str) -> str | None:
    with db.session_factory(url)() as s:
        names = SecretStore(url=url).names(s, env_secret_scope("shop", "staging"))
        return SecretStore(url=url).get(s, env_secret_scope("shop", "staging"), "basic_auth_password") \
            if "basic_auth_password" in names else None


def last_job(url: str) -> Job:
    with db.session_factory(url)() as s:
        return s.query(Job).order_by(Job.id.desc()).first()


def test_on_with_a_generated_password_then_a_given_one_then_off(staging):
    out = run("env", "auth", "shop/staging", "--user", "preview").stdout
    assert "queued: env_auth shop/staging on for user preview" in out
    shown = out.split("password (shown once): ")[1].strip()
    assert len(shown) >= 16 and password(staging) == shown
    job = last_job(staging)
    assert (job.type, job.payload) == ("env_auth", {"pressluft_basic_auth_state": "present",
                                                     "pressluft_basic_auth_user": "preview"})
    assert shown not in json.dumps(job.payload)
    finish_next(staging, artifacts={"pressluft_env_auth": {"enabled": True, "user": "preview"}})

    made = js("env", "auth", "shop/staging", "--user", "qa.team", "--password-stdin", input="s3cret pass\n")
    assert "password" not in made and password(staging) == "s3cret pass"
    finish_next(staging)

    assert "env_auth shop/staging off" in run("env", "auth", "shop/staging", "--off").stdout
    assert last_job(staging).payload == {"pressluft_basic_auth_state": "absent"}
    # A failed switch-off keeps the password (the node may still ask for it); a successful one drops it.
    finish_next(staging, state="failed")
    assert password(staging) == "s3cret pass"
    run("env", "auth", "shop/staging", "--off")
    finish_next(staging)
    assert password(staging) is None
    with db.session_factory(staging)() as s:  # the environment's other secrets stay
        assert s.query(Secret).filter(Secret.scope == env_secret_scope("shop", "staging")).count() >= 2


@pytest.mark.parametrize("args,stdin", [
    (["shop/production", "--user", "preview"], None),  # production stays public
    (["shop", "--user", "preview"], None),  # SITE/ENV spelled out
    (["shop/staging"], None),  # neither --user nor --off
    (["shop/staging", "--user", "a:b"], None),
    (["shop/staging", "--user", "pre view"], None),
    (["shop/staging", "--user", "x\n"], None),
    (["shop/staging", "--user", "-x"], None),
    (["shop/staging", "--user", "u" * 65], None),
    (["shop/staging", "--user", "pressluft-probe"], None),
    (["shop/staging", "--user", "preview", "--password-stdin"], "short\n"),
    (["shop/staging", "--user", "preview", "--password-stdin"], "tab\tinside it\n"),
    (["shop/staging", "--user", "preview", "--off"], None),
    (["shop/staging", "--off", "--password-stdin"], "whatever-long\n"),
])
def test_bad_input_exits_2_and_changes_nothing(staging, args, stdin):
    before = db_snapshot(staging)
    result = run("env", "auth", *args, "--json", ok=False, input=stdin)
    assert result.exit_code == 2, result.output
    assert json.loads(result.stdout)["error"]["code"]
    after = db_snapshot(staging)
    after.pop("audit_log"), before.pop("audit_log")  # the refusal itself is audited
    assert after == before


def test_an_environment_that_is_not_active_is_refused(staging):
    assert run("env", "auth", "shop/qa", "--user", "preview", ok=False).exit_code == 3

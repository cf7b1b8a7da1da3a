"""Name rules, error codes and pydantic input schemas."""

from __future__ import annotations

import pytest

from pressluft_lib import errors, jobtypes, names
from pressluft_lib.schemas import JobCreate, JobFilter, NodeCreate, SiteCreate, parse


@pytest.mark.parametrize("name", ["ab", "blog", "a1", "shop2024", "a" * 20])
def test_valid_sites(name):
    assert names.validate_site(name) == name


@pytest.mark.parametrize(
    "name", ["a", "1blog", "Blog", "my-site", "my_site", "a" * 21, "", "root", "www", "sudo", None, 5]
)
def test_invalid_sites(name):
    with pytest.raises(errors.ValidationError) as exc:
        names.validate_site(name)
    assert exc.value.code == "invalid_input" and exc.value.exit_code == 2


@pytest.mark.parametrize(
    ("name", "ok"), [("production", True), ("staging", True), ("p", False), ("a" * 12, False)]
)
def test_envs(name, ok):
    if ok:
        assert names.validate_env(name) == name
    else:
        with pytest.raises(errors.ValidationError):
            names.validate_env(name)


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("example.com", True),
        ("a.b.c.example.org", True),
        ("xn--bcher-kva.example", True),
        ("blog.localhost", True),
        ("localhost", False),
        ("Example.com", False),
        ("-a.example.com", False),
        ("a-.example.com", False),
        ("a..example.com", False),
        ("a_b.example.com", False),
        (("a" * 63 + ".") * 4 + "com", False),
        ("a" * 64 + ".com", False),
    ],
)
def test_domains(name, ok):
    if ok:
        assert names.validate_domain(name) == name
    else:
        with pytest.raises(errors.ValidationError):
            names.validate_domain(name)


def test_env_user():
    assert names.env_user("blog") == "blog_production"
    assert names.env_user("a" * 20, "b" * 11) == "a" * 20 + "_" + "b" * 11  # 32 chars: the Linux limit
    with pytest.raises(errors.ValidationError):
        names.env_user("root", "production")


def test_error_codes_are_stable():
    table = {
        errors.ValidationError: ("invalid_input", 2),
        errors.NotFound: ("not_found", 3),
        errors.ConflictError: ("conflict", 4),
        errors.TransitionError: ("forbidden_transition", 5),
        errors.StaleFencingToken: ("stale_fencing_token", 6),
    }
    for cls, (code, exit_code) in table.items():
        err = cls("boom", details={"x": 1})
        assert (err.code, err.exit_code, str(err)) == (code, exit_code, "boom")
        assert err.to_dict() == {"code": code, "message": "boom", "details": {"x": 1}}
        assert isinstance(err, errors.PressluftError)
    assert errors.PressluftError("custom", "msg").code == "custom"


def test_site_create_schema():
    sc = parse(
        SiteCreate, {"name": "blog", "node": "n1", "domains": ["blog.example.com"], "php_version": "8.2"}
    )
    assert (sc.env, sc.effective_domains()) == ("production", ["blog.example.com"])
    assert parse(SiteCreate, {"name": "blog", "node": "n1"}).effective_domains() == ["blog.localhost"]


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"name": "root", "node": "n1"}, "name: site name 'root' is reserved"),
        ({"name": "blog", "node": "n1", "domains": ["x"]}, "domains.0: invalid domain"),
        ({"name": "blog", "node": "n1", "domains": ["a.com", "a.com"]}, "unique"),
        ({"name": "blog", "node": "n1", "php_version": "8"}, "php_version"),
        ({"name": "blog", "node": "n1", "evil": True}, "evil: Extra inputs"),
        ({"name": "blog", "node": "N 1"}, "node: invalid node name"),
        ({"name": "blog", "node": "n1", "retention": {"daily": -1}}, "retention.daily"),
    ],
)
def test_site_create_rejects(data, needle):
    with pytest.raises(errors.ValidationError) as exc:
        parse(SiteCreate, data)
    assert needle in exc.value.message


def test_node_create_schema():
    n = parse(NodeCreate, {"name": "web1", "host": "10.0.0.5", "ssh_key_path": "/root/.ssh/id"})
    assert (n.port, n.user, n.local, n.roles) == (22, "root", False, ["web", "db", "cache"])
    for bad in (
        {"host": "a b"},
        {"port": 0},
        {"user": "Root;"},
        {"ssh_key_path": "rel/key"},
        {"roles": ["mail"]},
    ):
        with pytest.raises(errors.ValidationError):
            parse(NodeCreate, {"name": "web1", "host": "web1.example.com", **bad})


def test_job_schemas():
    assert parse(JobFilter, {"state": ["queued", "running"], "site": "blog"}).limit == 50
    with pytest.raises(errors.ValidationError) as exc:
        parse(JobFilter, {"state": ["bogus"], "type": "nope", "limit": 0})
    assert len(exc.value.details["errors"]) == 3
    assert parse(JobCreate, {"type": "site_create", "site": "blog"}).env is None
    with pytest.raises(errors.ValidationError, match="unknown job type"):
        parse(JobCreate, {"type": "../../etc/passwd"})


def test_job_type_registry():
    assert {t: (jt.scope, jt.destructive, jt.playbook) for t, jt in jobtypes.JOB_TYPES.items()} == {
        "node_provision": ("node", False, "node_provision.yml"),
        "site_create": ("site", False, "site_create.yml"),
        "site_delete": ("site", True, "site_delete.yml"),
        "site_adopt": ("site", False, "site_adopt.yml"),
        "backup_create": ("site", False, "backup_create.yml"),
        "backup_cleanup": ("site", True, "backup_cleanup.yml"),
        "env_restore": ("site", True, "env_restore.yml"),
        "env_deploy": ("site", False, "env_deploy.yml"),
        "release_rollback": ("site", True, "release_rollback.yml"),
        "health_check": ("site", False, "health_check.yml"),
        "secrets_rotate": ("site", False, "secrets_rotate.yml"),
        "domain_add": ("site", False, "domain_add.yml"),
        "domain_remove": ("site", False, "domain_remove.yml"),
        "domain_renew": ("site", False, "domain_renew.yml"),
        "node_create": ("node", False, "node_create.yml"),
        "node_destroy": ("node", True, "node_destroy.yml"),
        "env_update": ("site", True, "env_update.yml"),
        "env_cache_toggle": ("site", False, "env_cache_toggle.yml"),
        "cache_purge": ("site", False, "cache_purge.yml"),
        "env_create": ("site", False, "env_create.yml"),
        "env_sync": ("site", True, "env_sync.yml"),
        "drift_check": ("site", False, "drift_check.yml"),
        "env_rebuild": ("site", True, "env_rebuild.yml"),
        "site_move": ("site", True, "site_move.yml"),
        "site_move_confirm": ("site", True, "site_move_confirm.yml"),
        "site_ip": ("site", False, "site_ip.yml"),
        "env_promote": ("site", True, "env_promote.yml"),
        "env_delete": ("site", True, "env_delete.yml"),
        "env_auth": ("site", False, "env_auth.yml"),
        "site_import": ("site", True, "site_import.yml"),
    }
    with pytest.raises(errors.ValidationError):
        jobtypes.register(jobtypes.JobType("x", "cluster", False, 1))

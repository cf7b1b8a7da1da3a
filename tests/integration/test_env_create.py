"""env create through the control plane on one provisioned node: a staging clone of a real production site.

pressluft CLI -> queue -> worker -> playbooks/env_create.yml (site_env without install, env_clone,
wp_search_replace). One clone per module; the tests read what it made.
"""

from __future__ import annotations

import base64
import http.client
import json
import urllib.error
import urllib.request

import pytest

from tests.rig import nodes as rig
from tests.rig.ansible import run_playbook
from tests.rig.control_plane import add_node, js, run, work
from tests.rig.wordpress import wordpress_archive

pytestmark = pytest.mark.node

SITE = "shop"
PROD, STAGE = f"/var/www/sites/{SITE}/production", f"/var/www/sites/{SITE}/staging"
PROD_HOST, STAGE_HOST = "shop.localhost", "staging.shop.localhost"

FIXTURES = r"""
kses_remove_filters();
$u = home_url();
update_option('pl_serial', array('url' => "$u/s", 'nested' => serialize(array('deep' => "$u/d"))));
$block = '<!-- wp:image {"url":"' . str_replace('/', '\/', $u) . '\/wp-content\/uploads\/a.jpg"} /-->';
$id = wp_insert_post(wp_slash(array('post_title' => 'Blocks', 'post_content' => $block,
                                    'post_status' => 'publish')), true);
echo $id;
"""


def wp(node, root: str, user: str, *args: str, check: bool = True) -> str:
    return node.exec("runuser", "-u", user, "--", "wp", f"--path={root}/current", "--skip-plugins",
                     "--skip-themes", *args, check=check).stdout.strip()


def get(node, host: str, path: str = "/", login: tuple[str, str] | None = None) -> tuple[int, dict, str]:
    headers = {"Host": host}
    if login is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(login).encode()).decode()
    req = urllib.request.Request(f"http://127.0.0.1:{node.http_port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, dict(resp.headers), resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode(errors="replace")


@pytest.fixture(scope="module")
def cloned(control_plane, provisioned_node):
    node = provisioned_node
    add_node(node)
    js("site", "create", SITE, "--node", node.name, "--wordpress", str(wordpress_archive()))
    work()
    user = f"{SITE}_production"
    post_id = wp(node, PROD, user, "eval", FIXTURES)
    node.sh(f"runuser -u {user} -- sh -c 'mkdir -p {PROD}/shared/uploads/2026 && "
            f"echo photo > {PROD}/shared/uploads/2026/a.jpg'")
    # Constants an import kept (site_import writes them so: root, the environment's group, 0640).
    node.exec("install", "-o", "root", "-g", user, "-m", "0640", "/dev/stdin", f"{PROD}/shared/constants.php",
              input="<?php\ndefine('SHOP_MODE', 'kept');\n")
    made = js("env", "create", f"{SITE}/staging", "--from", "production")
    # Every environment of a site shares the site's lock: nothing else runs on the site meanwhile.
    busy = run("secrets", "rotate", SITE, ok=False)
    assert busy.exit_code == 4 and f"job {made['job_id']}" in busy.stderr, busy.stderr
    jobs = work()
    assert [j["id"] for j in jobs] == [made["job_id"]]
    return node, made, post_id


def test_the_clone_is_a_full_isolated_environment(cloned):
    node, made, _ = cloned
    assert made["domains"] == [STAGE_HOST]
    shown = js("site", "show", SITE)
    envs = {e["name"]: e for e in shown["environments"]}
    assert envs["staging"]["state"] == "active" and envs["staging"]["domains"] == [STAGE_HOST]
    assert node.exec("id", "-un", "shop_staging").stdout.strip() == "shop_staging"
    node.exec("test", "-S", "/run/php/pressluft-shop_staging.sock")
    tables = node.exec("mysql", "-N", "-e", "SHOW TABLES", "shop_staging").stdout.split()
    assert "wp_posts" in tables and "wp_options" in tables
    # Its own database user, which cannot read production's database.
    config = node.exec("cat", f"{STAGE}/shared/wp-config.php").stdout
    assert "define('DB_USER', 'shop_staging')" in config
    denied = node.exec("runuser", "-u", "shop_staging", "--", "wp", f"--path={STAGE}/current", "db", "query",
                       "SELECT COUNT(*) FROM shop_production.wp_posts", check=False)
    assert denied.returncode != 0
    # The live release, its links pointing into the staging tree; the uploads, owned by staging's user.
    release = node.exec("readlink", f"{PROD}/current").stdout.strip().rsplit("/", 1)[1]
    assert node.exec("readlink", f"{STAGE}/current").stdout.strip() == f"{STAGE}/releases/{release}"
    config_link = node.exec("readlink", f"{STAGE}/current/wp-config.php").stdout.strip()
    assert config_link == f"{STAGE}/shared/wp-config.php"
    assert node.stat(f"{STAGE}/shared/uploads/2026/a.jpg")[:2] == ("shop_staging", "www-data")
    assert node.stat(f"{STAGE}/shared/uploads/2026")[:2] == ("shop_staging", "www-data")
    # The snapshot env_clone took while site_env ran was moved in and its directory removed.
    node.exec("test", "!", "-e", f"/var/www/sites/{SITE}/.clone-staging")
    assert node.exec("cat", f"{STAGE}/shared/uploads/2026/a.jpg").stdout == "photo\n"
    # The imported constants came along, readable by staging alone, and its wp-config.php loads them.
    assert node.stat(f"{STAGE}/shared/constants.php") == ("root", "shop_staging", "640")
    assert wp(node, STAGE, "shop_staging", "eval", "echo SHOP_MODE;") == "kept"


def test_urls_are_rewritten_and_the_result_holds_the_counts(cloned):
    node, made, post_id = cloned
    user = "shop_staging"
    assert wp(node, STAGE, user, "option", "get", "home") == f"http://{STAGE_HOST}"
    assert wp(node, STAGE, user, "option", "get", "siteurl") == f"http://{STAGE_HOST}"
    serial = json.loads(wp(node, STAGE, user, "option", "get", "pl_serial", "--format=json"))
    assert serial["url"] == f"http://{STAGE_HOST}/s"
    assert "staging.shop.localhost/d" in serial["nested"]
    content = wp(node, STAGE, user, "post", "get", post_id, "--field=post_content")
    assert f'"url":"http:\\/\\/{STAGE_HOST}\\/wp-content' in content
    # Production is untouched.
    assert wp(node, PROD, "shop_production", "option", "get", "home") == f"http://{PROD_HOST}"
    shown = js("jobs", "show", str(made["job_id"]))
    clone = [e["data"] for e in shown["events"] if e["kind"] == "clone"]
    assert len(clone) == 1, shown["events"]
    clone = clone[0]
    assert clone["source_env"] == "production" and clone["url"] == f"http://{STAGE_HOST}"
    assert clone["total_rows"] > 0 and clone["total_rows"] == sum(p["rows"] for p in clone["passes"])
    rows = {p["search"]: p["rows"] for p in clone["passes"]}
    assert rows[f"http://{PROD_HOST}"] > 0 and rows[f"http:\\/\\/{PROD_HOST}"] > 0
    # Only the forms the copied dump held got a pass (the site has no https:// URL); a dry run of every
    # form over every table finds nothing of production's host (but in guid, which is never rewritten).
    assert set(rows) == {f"http://{PROD_HOST}", f"http:\\/\\/{PROD_HOST}"}, rows
    for scheme in ("http", "https"):
        for sep in ("//", "\\/\\/"):
            left = wp(node, STAGE, user, "search-replace", f"{scheme}:{sep}{PROD_HOST}", "x", "--all-tables",
                      "--skip-columns=guid", "--dry-run", "--format=count")
            assert left == "0", (scheme, sep, left)


def test_staging_is_safe_by_default(cloned):
    node, _, _ = cloned
    status, headers, body = get(node, STAGE_HOST)
    assert status == 200 and STAGE_HOST in body and f"//{PROD_HOST}/" not in body
    assert headers.get("X-Robots-Tag") == "noindex, nofollow"
    status, headers, _ = get(node, PROD_HOST)
    assert status == 200 and "X-Robots-Tag" not in headers
    assert wp(node, STAGE, "shop_staging", "eval", "echo wp_get_environment_type();") == "staging"
    assert wp(node, PROD, "shop_production", "eval", "echo wp_get_environment_type();") == "production"
    mail = "var_export(wp_mail('someone@example.com', 'Hi', 'Body'));"
    sent = wp(node, STAGE, "shop_staging", "eval", mail)
    assert sent == "true"
    caught = node.exec("sh", "-c", f"cat {STAGE}/logs/mail/*.json").stdout
    assert json.loads(caught)["to"] == "someone@example.com"


def test_basic_auth_guards_staging_but_never_acme_nor_health_checks(cloned):
    """pressluft env auth (job env_auth): 401 without credentials, 200 with them, the ACME path and
    production open, the node's own health check logs in; --off opens staging again."""
    node, _, _ = cloned
    token = "/.well-known/acme-challenge/pl-token"
    node.sh(f"mkdir -p /var/lib/pressluft-acme/shop_staging{token.rsplit('/', 1)[0]} && "
            f"echo token-body > /var/lib/pressluft-acme/shop_staging{token}")
    shown = run("env", "auth", f"{SITE}/staging", "--user", "preview").stdout
    password = shown.split("password (shown once): ")[1].strip()
    work()
    assert get(node, STAGE_HOST)[0] == 401
    assert get(node, STAGE_HOST, login=("preview", "wrong-password"))[0] == 401
    status, _, body = get(node, STAGE_HOST, login=("preview", password))
    assert status == 200 and STAGE_HOST in body
    status, _, body = get(node, STAGE_HOST, token)
    assert (status, body) == (200, "token-body\n")
    assert get(node, PROD_HOST)[0] == 200
    # The node keeps a hash only, readable by nginx's group and no environment user.
    htpasswd = "/etc/nginx/pressluft-auth/shop_staging.htpasswd"
    assert node.stat(htpasswd) == ("root", "www-data", "640")
    text = node.exec("cat", htpasswd).stdout
    assert text.startswith("preview:$6$") and password not in text
    # The release machinery's live check goes through nginx too: it logs in as the probe user.
    js("health", f"{SITE}/staging")
    work()
    run("env", "auth", f"{SITE}/staging", "--off")
    work()
    assert get(node, STAGE_HOST)[0] == 200
    assert node.exec("test", "-e", htpasswd, check=False).returncode != 0


def test_bad_input_is_refused_and_queues_nothing(cloned):
    before = len(js("jobs", "list"))
    for args, code, text in (
        (("shop/production", "--from", "production"), 2, "cannot be cloned from itself"),
        (("shop",), 2, "use SITE/ENV"),
        (("shop/Bad",), 2, "invalid environment name"),
        (("nope/staging",), 3, "site 'nope' does not exist"),
        (("shop/qa", "--from", "nothere"), 3, "no environment nothere"),
        (("shop/staging",), 4, "already exists"),
        (("shop/qa", "--domain", STAGE_HOST), 4, "domain already in use"),
    ):
        result = run("env", "create", *args, ok=False)
        assert result.exit_code == code and text in result.stderr, (args, result.exit_code, result.stderr)
    assert len(js("jobs", "list")) == before


def test_drift_reports_production_writes_since_the_clone(cloned):
    node, _, _ = cloned
    user = "shop_production"
    post = wp(node, PROD, user, "post", "create", "--post_title=After the clone", "--post_status=publish",
              "--porcelain")
    wp(node, PROD, user, "comment", "create", f"--comment_post_ID={post}", "--comment_content=Later",
       "--comment_author=Reader")
    wp(node, PROD, user, "user", "create", "late", "late@example.com", "--role=subscriber")
    queued = js("drift", "shop/staging")
    assert queued["against"] == "production" and queued["since"]
    assert [j["id"] for j in work()] == [queued["job_id"]]
    shown = js("drift", "show", "shop/staging")
    assert shown["job_id"] == queued["job_id"]
    report = shown["report"]
    assert report["differs"] == [], report["differs"]  # same core, plugins, themes, release, schema
    assert report["env"]["release"] == report["against"]["release"]
    assert report["env"]["core"] and report["env"]["tables"]["wp_posts"]
    writes = report["writes"]
    assert writes["since"] == queued["since"] and {"post", "comment"} <= set(writes["after_since"])
    for table in ("wp_posts", "wp_comments", "wp_users"):
        rows = writes["tables"][table]
        assert rows["against"] > rows["env"], (table, rows)
        # The baseline a promotion counts production's writes from: its rows at the clone.
        assert shown["baseline"]["rows"][table] == rows["env"], (table, shown["baseline"])
    assert shown["baseline"]["renewed"] == {}
    text = run("drift", "show", "shop/staging").stdout
    assert "baseline of production's writes (rows per table at the clone):" in text, text


def test_drift_bad_input_is_refused(cloned):
    before = len(js("jobs", "list"))
    for args, code, text in (
        (("shop/production",), 2, "cannot be compared with itself"),
        (("shop/qa",), 3, "no environment qa"),
        (("show", "shop/qa"), 3, "no environment qa"),
        (("show", "shop/production", "x"), 2, "use `pressluft drift SITE/ENV`"),
    ):
        result = run("drift", *args, ok=False)
        assert result.exit_code == code and text in result.stderr, (args, result.exit_code, result.stderr)
    assert len(js("jobs", "list")) == before


def test_sync_brings_production_content_down_and_never_goes_up(cloned):
    node, _, _ = cloned
    # After the drift test production has a post staging lacks; staging gets an upload production lacks.
    titles = "--field=post_title"
    assert "After the clone" not in wp(node, STAGE, "shop_staging", "post", "list", titles)
    node.exec("runuser", "-u", "shop_staging", "--", "touch", f"{STAGE}/shared/uploads/staging-only.txt")
    for args, code, text in (
        (("shop/production", "--from", "staging"), 2, "production is never overwritten"),
        (("shop/staging", "--from", "staging"), 2, "synced from itself"),
        (("shop/qa",), 3, "no environment qa"),
    ):
        result = run("env", "sync", *args, ok=False)
        assert result.exit_code == code and text in result.stderr, (args, result.exit_code, result.stderr)
    queued = js("env", "sync", "shop/staging", "--db")
    assert queued["copied"] == ["database"]
    assert [j["id"] for j in work()] == [queued["job_id"]]
    assert "After the clone" in wp(node, STAGE, "shop_staging", "post", "list", titles)
    assert wp(node, STAGE, "shop_staging", "option", "get", "home") == f"http://{STAGE_HOST}"
    node.exec("test", "-e", f"{STAGE}/shared/uploads/staging-only.txt")  # --db only: uploads untouched
    sync = [e["data"] for e in js("jobs", "show", str(queued["job_id"]))["events"] if e["kind"] == "sync"]
    assert sync and sync[0]["copied"] == ["database"] and sync[0]["total_rows"] > 0
    assert wp(node, PROD, "shop_production", "option", "get", "home") == f"http://{PROD_HOST}"


# -- promote (job env_promote) ------------------------------------------------------------------------
# Staging's code changes here the way a developer's would: a new release directory beside the others and
# `current` moved to it (a mu-plugin; copying the release keeps these tests to seconds, not a deploy each).
GOOD = "<?php add_action('send_headers', function () { header('X-Promoted: yes'); });\n"
BROKEN = ("<?php if (($_SERVER['HTTP_HOST'] ?? '') === 'shop.localhost') { http_response_code(500); "
          "exit('broken'); }\n")
PROMO_TABLE = ("CREATE TABLE wp_promo_settings (k VARCHAR(32) PRIMARY KEY, v TEXT); "
               "INSERT INTO wp_promo_settings VALUES ('banner', 'http://staging.shop.localhost/sale')")


def staging_release(node, name: str, plugin: str) -> str:
    live = node.exec("readlink", f"{STAGE}/current").stdout.strip()
    new = f"{STAGE}/releases/{name}"
    node.sh(f"cp -a {live} {new} && mkdir -p {new}/wp-content/mu-plugins")
    node.sh(f"cat > {new}/wp-content/mu-plugins/promo.php <<'EOF'\n{plugin}EOF\n")
    node.sh(f"ln -sfn {new} {STAGE}/current.new && mv -T {STAGE}/current.new {STAGE}/current")
    return name


def drift_now() -> dict:
    queued = js("drift", "shop/staging")
    assert [j["id"] for j in work()] == [queued["job_id"]]
    return queued


def prod_release(node) -> str:
    return node.exec("readlink", f"{PROD}/current").stdout.strip()


def env_state(name: str) -> str:
    return {e["name"]: e for e in js("site", "show", SITE)["environments"]}[name]["state"]


def promote_refused(*args: str, code: int = 2) -> str:
    before = len(js("jobs", "list"))
    result = run("promote", *args, ok=False)
    assert result.exit_code == code, (args, result.exit_code, result.stderr)
    assert len(js("jobs", "list")) == before
    return result.stderr


def test_promote_bad_input_is_refused_and_changes_nothing(cloned):
    node, _, _ = cloned
    live = prod_release(node)
    assert "cannot be promoted onto itself" in promote_refused("shop/production")
    assert "use SITE/ENV" in promote_refused("shop")
    assert "no environment qa" in promote_refused("shop/qa", code=3)
    assert "invalid table name" in promote_refused("shop/staging", "--tables", "wp_posts;drop")
    # The sync test changed staging after the drift test's report.
    assert "older than the environment's last change" in promote_refused("shop/staging")
    assert prod_release(node) == live and env_state("production") == "active"


def test_promote_moves_code_up_and_keeps_production_content(cloned):
    node, _, _ = cloned
    staging_release(node, "r-promo", GOOD)
    wp(node, STAGE, "shop_staging", "db", "query", PROMO_TABLE)
    # Production writes after the clone (the sync): a post, a comment, a user.
    user = "shop_production"
    post = wp(node, PROD, user, "post", "create", "--post_title=Written before the promote",
              "--post_status=publish", "--porcelain")
    wp(node, PROD, user, "comment", "create", f"--comment_post_ID={post}", "--comment_content=Keep me",
       "--comment_author=Reader")
    wp(node, PROD, user, "user", "create", "keepme", "keepme@example.com", "--role=subscriber")
    drift_now()
    assert "wp_users (protected" in promote_refused("shop/staging", "--tables", "wp_users")
    wrote = promote_refused("shop/staging", "--tables", "wp_posts", "--allow-protected")
    assert "wp_posts (production wrote to it since the clone: " in wrote, wrote
    assert "not in the drift report" in promote_refused("shop/staging", "--tables", "wp_nope")
    before = prod_release(node)
    queued = js("promote", "shop/staging", "--tables", "wp_promo_settings")
    assert queued["from_release"] == "r-promo" and queued["tables"] == ["wp_promo_settings"]
    assert [j["id"] for j in work()] == [queued["job_id"]]
    assert prod_release(node) == f"{PROD}/releases/{queued['release']}" != before
    status, headers, _ = get(node, PROD_HOST)
    assert status == 200 and headers.get("X-Promoted") == "yes"
    node.exec("test", "-f", f"{PROD}/current/wp-content/mu-plugins/promo.php")
    config_link = node.exec("readlink", f"{PROD}/current/wp-config.php").stdout.strip()
    assert config_link == f"{PROD}/shared/wp-config.php"
    # Staging's own release is untouched: still live there, its links still staging's.
    assert node.exec("readlink", f"{STAGE}/current").stdout.strip() == f"{STAGE}/releases/r-promo"
    staging_link = node.exec("readlink", f"{STAGE}/current/wp-config.php").stdout.strip()
    assert staging_link == f"{STAGE}/shared/wp-config.php" and get(node, STAGE_HOST)[0] == 200
    titles = wp(node, PROD, user, "post", "list", "--field=post_title")
    assert "Written before the promote" in titles and "After the clone" in titles
    assert "Keep me" in wp(node, PROD, user, "comment", "list", "--field=comment_content")
    assert "keepme" in wp(node, PROD, user, "user", "list", "--field=user_login")
    assert "late" in wp(node, PROD, user, "user", "list", "--field=user_login")
    banner = wp(node, PROD, user, "db", "query", "SELECT v FROM wp_promo_settings", "--skip-column-names")
    assert banner == f"http://{PROD_HOST}/sale"
    assert wp(node, PROD, user, "option", "get", "home") == f"http://{PROD_HOST}"
    backups = [b for b in js("backup", "list", "shop/production") if b["id"] == queued["backup_id"]]
    assert backups and backups[0]["state"] == "completed", backups
    assert env_state("production") == "active"
    # The push renewed the table's baseline (production's rows after it): staging changes the table again
    # and it goes up again, not refused as a production write since the clone (also checked on the node).
    wp(node, STAGE, "shop_staging", "db", "query", "INSERT INTO wp_promo_settings VALUES ('second', 'x')")
    drift_now()
    again = js("promote", "shop/staging", "--tables", "wp_promo_settings")
    assert [j["id"] for j in work()] == [again["job_id"]]
    count = "SELECT COUNT(*) FROM wp_promo_settings"
    assert wp(node, PROD, user, "db", "query", count, "--skip-column-names") == "2"


def test_a_failing_staging_release_never_reaches_production(cloned):
    node, _, _ = cloned
    staging_release(node, "r-broken", BROKEN)
    assert get(node, STAGE_HOST)[0] == 200  # it only fails as production
    drift_now()
    live = prod_release(node)
    queued = js("promote", "shop/staging")
    assert [j["id"] for j in work(expect="failed")] == [queued["job_id"]]
    assert prod_release(node) == live
    status, headers, _ = get(node, PROD_HOST)
    assert status == 200 and headers.get("X-Promoted") == "yes"
    releases = {r["release"]: r for r in js("release", "list", "shop/production")}
    assert releases[queued["release"]]["state"] == "failed", releases[queued["release"]]
    assert env_state("production") == "active"


def test_promote_stops_on_a_changed_staging_or_a_failed_backup(cloned):
    node, _, _ = cloned
    live = prod_release(node)
    # Staging moved (by hand, unseen by the control plane) after the newest report: the job stops first.
    node.sh(f"ln -sfn {STAGE}/releases/r-promo {STAGE}/current.new && "
            f"mv -T {STAGE}/current.new {STAGE}/current")
    queued = js("promote", "shop/staging")
    assert [j["id"] for j in work(expect="failed")] == [queued["job_id"]]
    shown = json.dumps(js("jobs", "show", str(queued["job_id"]))["events"])
    assert "not the release r-broken its drift report saw" in shown
    assert prod_release(node) == live and env_state("production") == "active"
    # Production writes to a table after the report that allowed it: the job checks again and stops.
    drift_now()
    wp(node, PROD, "shop_production", "db", "query", "INSERT INTO wp_promo_settings VALUES ('late', 'x')")
    queued = js("promote", "shop/staging", "--tables", "wp_promo_settings")
    assert [j["id"] for j in work(expect="failed")] == [queued["job_id"]]
    shown = json.dumps(js("jobs", "show", str(queued["job_id"]))["events"])
    # Its baseline is the rows the second push above left (2), not the clone's.
    assert "table wp_promo_settings: production wrote to it since the clone (2 rows then, 3 now" in shown
    assert prod_release(node) == live and env_state("production") == "active"
    # The production backup fails: nothing else happens.
    backups = "/var/backups/pressluft/shop_production"
    node.sh(f"mv {backups} {backups}.aside && touch {backups}")
    try:
        queued = js("promote", "shop/staging")
        assert [j["id"] for j in work(expect="failed")] == [queued["job_id"]]
    finally:
        node.sh(f"rm -f {backups} && mv {backups}.aside {backups}")
    assert prod_release(node) == live and env_state("production") == "active"
    made = [b for b in js("backup", "list", "shop/production") if b["id"] == queued["backup_id"]]
    assert made and made[0]["state"] == "failed", made
    assert queued["release"] not in node.exec("ls", f"{PROD}/releases").stdout


# -- env delete (job env_delete) ------------------------------------------------------------------------
def test_a_failed_snapshot_fails_the_clone_with_its_reason_and_a_retry_replaces_it(cloned, tmp_path):
    """The snapshot runs detached from its task: its error reaches the job through the fill."""
    node, _, _ = cloned

    def create(env: str):
        return run_playbook("env_create.yml", rig.inventory([node]), tmp_path, extravars={
            "pressluft_target": "nodes", "pressluft_site": SITE, "pressluft_env": env,
            "pressluft_source_env": "production", "pressluft_domains": [f"{env}.{PROD_HOST}"]})

    node.exec("mv", f"{PROD}/tmp", f"{PROD}/tmp.off")  # wp db export writes there as production's user
    try:
        failed = create("qa")
    finally:
        node.exec("mv", f"{PROD}/tmp.off", f"{PROD}/tmp")
    assert failed.rc != 0, failed.explain()
    assert "the snapshot of shop_production failed: wp db export" in failed.stdout, failed.explain()
    node.exec("test", "-f", f"/var/www/sites/{SITE}/.clone-qa/error.json")
    retried = create("qa")
    assert retried.rc == 0, retried.explain()
    node.exec("test", "!", "-e", f"/var/www/sites/{SITE}/.clone-qa")
    assert wp(node, "/var/www/sites/shop/qa", "shop_qa", "option", "get", "home") == f"http://qa.{PROD_HOST}"
    gone = run_playbook("env_delete.yml", rig.inventory([node]), tmp_path, extravars={
        "pressluft_target": "nodes", "pressluft_site": SITE, "pressluft_env": "qa",
        "pressluft_pre_delete_backup_id": "qa-final"})
    assert gone.rc == 0, gone.explain()


def test_env_delete_takes_a_final_backup_and_removes_everything_staging_owned(cloned):
    node, _, _ = cloned
    before = len(js("jobs", "list"))
    for args, code, text in (
        (("env", "delete", "shop/production"), 2, "while shop has other environments (staging)"),
        (("env", "delete", "shop/qa"), 3, "no environment qa"),
        (("site", "delete", "shop", "--yes"), 2, "still has environments staging"),
    ):
        result = run(*args, ok=False)
        assert result.exit_code == code and text in result.stderr, (args, result.exit_code, result.stderr)
    assert len(js("jobs", "list")) == before
    # What an env_create that failed before its fill leaves (its snapshot) goes with the environment.
    node.exec("install", "-d", "-m", "0700", f"/var/www/sites/{SITE}/.clone-staging/uploads")
    queued = js("env", "delete", "shop/staging")
    assert [j["id"] for j in work()] == [queued["job_id"]]
    final = [b for b in js("backup", "list", "shop/staging") if b["id"] == queued["backup_id"]]
    assert final and final[0]["state"] == "completed" and final[0]["trigger"] == "pre_delete", final
    node.exec("test", "-d", f"/var/backups/pressluft/shop_staging/{queued['backup_id']}")
    gone = node.sh(
        "id shop_staging 2>&1; ls /run/php/pressluft-shop_staging.sock /etc/nginx/pressluft-sites/"
        f"shop_staging.conf {STAGE} /var/www/sites/{SITE}/.clone-staging 2>&1; "
        "mysql -N -e \"SHOW DATABASES LIKE 'shop_staging'; "
        "SELECT user FROM mysql.user WHERE user = 'shop_staging'\"; "
        "REDISCLI_AUTH=$(cat /etc/redis/pressluft-admin.pass) redis-cli --no-auth-warning "
        "-s /run/redis/redis-server.sock --user pressluft-admin ACL USERS", check=False)
    assert "no such user" in gone and gone.count("No such file") == 4, gone
    assert "shop_staging\n" not in gone.replace("'shop_staging'", "") and "shop_production" in gone, gone
    envs = {e["name"]: e for e in js("site", "show", SITE)["environments"]}
    assert "staging" not in envs or envs["staging"]["state"] == "deleted", envs
    try:  # nginx's default server closes the connection (444) for a name no environment serves
        assert get(node, STAGE_HOST)[0] != 200
    except (ConnectionError, http.client.HTTPException):
        pass
    assert get(node, PROD_HOST)[0] == 200
    # Production alone now: it goes with its site.
    assert "goes with its site" in run("env", "delete", "shop/production", ok=False).stderr

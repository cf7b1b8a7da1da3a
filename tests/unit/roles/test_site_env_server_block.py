"""site_env's server block as nginx reads it, without a node: rendered with Jinja from the role's templates
for each domain state (no certificate, a certificate, aliases, HSTS) and checked with the host's `nginx -t`
(prefix and pid in a temporary directory; nothing is started). What a request then gets is tested on a
node in tests/integration/test_domains.py."""

from __future__ import annotations

import datetime
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jinja2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.rig.ansible import collections_path

if str(collections_path()) not in sys.path:
    sys.path.insert(0, str(collections_path()))
from ansible_collections.pressluft.wordpress.plugins.module_utils import _env_auth, _page_cache

ROOT = Path(__file__).resolve().parents[3]
TEMPLATES = ROOT / "roles/site_env/templates"
NAME, ALIAS = "shop.example.com", "old.example.com"


def render(tmp: Path, tls: bool, redirects: list[str], hsts: bool = False, staging: bool = False) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined,
                             trim_blocks=True)  # Ansible's template defaults
    names = {"name": "shop_production", "current": str(tmp / "current"), "pool_socket": str(tmp / "php.sock"),
             "cache_conf": str(tmp / "cache.conf"), "readonly_conf": str(tmp / "ro/shop_production.conf"),
             "auth_conf": str(tmp / "auth/shop_production.conf"),
             "auth_htpasswd": str(tmp / "auth/shop_production.htpasswd")}
    return env.get_template("nginx-site.conf.j2").render(
        ansible_managed="test", site_env_names=names, site_env_server_names=[NAME, "shop.localhost"],
        site_env_redirect_names=redirects, site_env_tls=tls, site_env_hsts=hsts, site_env_nginx_ipv6=False,
        site_env_tree={"inet6": False}, site_env_client_max_body_size="64m",
        site_env_tls_dir=str(tmp / "tls"), site_env_acme_dir=str(tmp / "acme"), site_env_staging=staging,
    )


def nginx_t(tmp: Path, conf: str) -> subprocess.CompletedProcess:
    (tmp / "snippets").mkdir(exist_ok=True)
    (tmp / "snippets/pressluft-php.conf").write_text("fastcgi_param SCRIPT_FILENAME $realpath_root;\n")
    # The page cache's zone (http level) and its switch, on, as `pressluft cache enable` writes them.
    cache = {"name": "shop_production", "cache_zone": "pressluft_shop_production",
             "cache_dir": str(tmp / "cache")}
    (tmp / "cache.conf").write_text(_page_cache.render_switch(cache, True, "10m"))
    (tmp / "nginx.conf").write_text(
        f"pid {tmp}/nginx.pid;\nerror_log {tmp}/error.log;\nevents {{}}\n"
        f"http {{\n access_log off;\n {_page_cache.render_zone(cache, '1m', '10m', '1h').splitlines()[1]}\n"
        f" include {tmp}/site.conf;\n}}\n"
    )
    (tmp / "site.conf").write_text(conf.replace("/var/log/nginx/", f"{tmp}/"))  # logs nginx -t opens
    return subprocess.run(["nginx", "-t", "-q", "-p", str(tmp), "-c", str(tmp / "nginx.conf")],
                          capture_output=True, text=True, timeout=30)


def cert(tmp: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, NAME)])
    now = datetime.datetime.now(datetime.UTC)
    c = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
         .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
         .sign(key, hashes.SHA256()))
    live = tmp / "tls/shop_production/live"
    live.mkdir(parents=True)
    (live / "fullchain.pem").write_bytes(c.public_bytes(serialization.Encoding.PEM))
    (live / "privkey.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


def blocks(conf: str) -> list[str]:
    return re.findall(r"^server \{\n.*?^\}", conf, re.S | re.M)


@pytest.fixture
def tmp(tmp_path):
    if shutil.which("nginx") is None:
        pytest.fail("nginx is not installed on this host: run scripts/setup --tests")
    return tmp_path


def test_without_a_certificate_everything_is_http_and_aliases_redirect_to_http(tmp):
    conf = render(tmp, tls=False, redirects=[ALIAS])
    assert nginx_t(tmp, conf).returncode == 0, nginx_t(tmp, conf).stderr
    main, alias = blocks(conf)
    assert "listen 80;" in main and "443" not in conf and "ssl_certificate" not in conf
    assert f"return 301 http://{NAME}$request_uri;" in alias


def test_with_a_certificate_http_redirects_and_every_block_answers_acme_first(tmp):
    cert(tmp)
    conf = render(tmp, tls=True, redirects=[ALIAS], hsts=True)
    checked = nginx_t(tmp, conf)
    assert checked.returncode == 0, checked.stderr
    main, http, alias = blocks(conf)
    assert "listen 443 ssl http2;" in main and "listen 80;" not in main
    assert "Strict-Transport-Security" in main
    assert "listen 80;" in http and "return 301 https://$host$request_uri;" in http
    assert "listen 80;" in alias and "listen 443 ssl http2;" in alias
    assert f"return 301 https://{NAME}$request_uri;" in alias
    for block in (main, http, alias):
        acme = block.index("location ^~ /.well-known/acme-challenge/")
        assert acme < block.index("location /"), block


def test_hsts_is_opt_in(tmp):
    cert(tmp)
    assert "Strict-Transport-Security" not in render(tmp, tls=True, redirects=[])


def test_staging_is_never_indexed(tmp):
    """env_create's staging environments answer with X-Robots-Tag on every response; production does not."""
    header = 'add_header X-Robots-Tag "noindex, nofollow" always;'
    assert header not in render(tmp, tls=False, redirects=[])
    conf = render(tmp, tls=False, redirects=[], staging=True)
    assert conf.count(header) == 1
    # At server level, and no location sets a header of its own (that would drop the inherited one).
    assert conf.count("add_header") == 1
    assert nginx_t(tmp, conf).returncode == 0


def test_the_read_only_switch_is_optional_and_refuses_writes_when_present(tmp):
    """site move's switch (playbooks/tasks/move_readonly.yml): nginx starts without it, and with it the
    server block answers every method but GET, HEAD and OPTIONS with 503."""
    import yaml

    conf = render(tmp, tls=False, redirects=[])
    assert nginx_t(tmp, conf).returncode == 0, nginx_t(tmp, conf).stderr
    tasks = yaml.safe_load((ROOT / "playbooks/tasks/move_readonly.yml").read_text())
    content = next(t["ansible.builtin.copy"]["content"] for t in tasks if "ansible.builtin.copy" in t)
    (tmp / "ro").mkdir()
    (tmp / "ro/shop_production.conf").write_text(content)
    assert nginx_t(tmp, conf).returncode == 0, nginx_t(tmp, conf).stderr
    # The switch is read by the server block (a broken one fails nginx -t).
    (tmp / "ro/shop_production.conf").write_text("this is not nginx;\n")
    assert nginx_t(tmp, conf).returncode != 0


def test_basic_auth_switch_covers_the_server_but_never_acme(tmp):
    """env_auth's switch (module_utils/_env_auth.py): nginx starts without it; with it, auth_basic applies at
    server level of the main block, and every ACME location turns it off (the CA never has a password)."""
    cert(tmp)
    conf = render(tmp, tls=True, redirects=[ALIAS])
    assert nginx_t(tmp, conf).returncode == 0, nginx_t(tmp, conf).stderr
    names = {"name": "shop_production",
             "auth_htpasswd": str(tmp / "auth/shop_production.htpasswd")}
    (tmp / "auth").mkdir()
    (tmp / "auth/shop_production.conf").write_text(_env_auth.render_conf(names))
    (tmp / "auth/shop_production.htpasswd").write_text(_env_auth.render_htpasswd([("preview", "$6$s$h")]))
    checked = nginx_t(tmp, conf)
    assert checked.returncode == 0, checked.stderr
    main, http, alias = blocks(conf)
    include = f"include {tmp}/auth/shop_production.con[f];"
    assert main.count(include) == 1 and include not in http + alias
    # At server level: after the ACME location's end, before the next location (not inside one).
    acme_end = main.index("}", main.index("location ^~ /.well-known/acme-challenge/"))
    assert acme_end < main.index(include) < main.index("location ~*")
    for block in (main, http, alias):
        acme = block[block.index("location ^~ /.well-known/acme-challenge/"):]
        assert "auth_basic off;" in acme[:acme.index("}")], block
    # The switch is fixed text naming only the environment's files.
    text = _env_auth.render_conf(names)
    assert 'auth_basic "shop_production";' in text and "preview" not in text
    (tmp / "auth/shop_production.conf").write_text("this is not nginx;\n")
    assert nginx_t(tmp, conf).returncode != 0

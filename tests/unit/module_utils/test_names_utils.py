"""module_utils/_names.py: the one implementation of the names in docs/contracts.md."""

from __future__ import annotations

import pytest
from ansible_collections.pressluft.wordpress.plugins.module_utils import _names


@pytest.mark.parametrize("name", ["ab", "shop", "a1", "s" * 20, "blog2026"])
def test_valid_sites(name):
    assert _names.validate_site(name) == name


@pytest.mark.parametrize("name", ["", "a", "1abc", "Shop", "my-site", "my_site", "s" * 21, "shop ", "shop\n",
                                  "../x", None, 5, "root", "pressluft", "mysql", "wwwdata"])
def test_invalid_sites(name):
    with pytest.raises(ValueError, match="site name"):
        _names.validate_site(name)


@pytest.mark.parametrize("name", ["production", "staging", "dev", "e" * 11])
def test_valid_envs(name):
    assert _names.validate_env(name) == name


@pytest.mark.parametrize("name", ["p", "prod\n", "e" * 12, "Prod", "prod-1", "2nd", "", None])
def test_invalid_envs(name):
    with pytest.raises(ValueError, match="environment name"):
        _names.validate_env(name)


@pytest.mark.parametrize("name", ["example.com", "shop.localhost", "a.b", "x-1.example.co.uk",
                                  ("a" * 63) + ".com", ".".join(["a" * 61] * 4)])
def test_valid_domains(name):
    assert len(name) <= 253
    assert _names.validate_domain(name) == name


@pytest.mark.parametrize("name", ["localhost", "Example.com", "-a.com", "a-.com", "a..com", ".a.com",
                                  "a.com.", ("a" * 64) + ".com", ".".join(["a" * 63] * 4), "ex ample.com",
                                  "ex_ample.com", "a.com\n", "", None])
def test_invalid_domains(name):
    with pytest.raises(ValueError, match="domain"):
        _names.validate_domain(name)


def test_env_names_follow_the_contract():
    n = _names.env_names("shop", "staging")
    assert n == {
        "site": "shop", "env": "staging", "name": "shop_staging",
        "user": "shop_staging", "group": "shop_staging", "db_name": "shop_staging", "db_user": "shop_staging",
        "redis_user": "shop_staging", "redis_prefix": "shop_staging:",
        "root": "/var/www/sites/shop/staging",
        "releases": "/var/www/sites/shop/staging/releases",
        "current": "/var/www/sites/shop/staging/current",
        "shared": "/var/www/sites/shop/staging/shared",
        "uploads": "/var/www/sites/shop/staging/shared/uploads",
        "wp_config": "/var/www/sites/shop/staging/shared/wp-config.php",
        "tmp": "/var/www/sites/shop/staging/tmp",
        "logs": "/var/www/sites/shop/staging/logs",
        "pool_name": "shop_staging",
        "pool_socket": "/run/php/pressluft-shop_staging.sock",
        "nginx_conf": "/etc/nginx/pressluft-sites/shop_staging.conf",
        "secrets_file": "/etc/pressluft/secrets/shop_staging.json",
        "cache_zone": "pressluft_shop_staging",
        "cache_dir": "/var/cache/pressluft/page/shop_staging",
        "cache_conf": "/etc/nginx/pressluft-cache/shop_staging.conf",
        "cache_zone_conf": "/etc/nginx/conf.d/pressluft-cache-shop_staging.conf",
        "readonly_conf": "/etc/nginx/pressluft-readonly/shop_staging.conf",
        "auth_conf": "/etc/nginx/pressluft-auth/shop_staging.conf",
        "auth_htpasswd": "/etc/nginx/pressluft-auth/shop_staging.htpasswd",
        "auth_probe": "/etc/nginx/pressluft-auth/shop_staging.probe",
    }
    assert _names.env_names("shop")["user"] == "shop_production"


def test_longest_names_fit_a_linux_user_name():
    assert len(_names.env_names("s" * 20, "e" * 11)["user"]) == 32


def test_pool_file():
    expected = "/etc/php/8.2/fpm/pool.d/pressluft-shop_production.conf"
    assert _names.pool_file("8.2", "shop", "production") == expected
    for bad in ("8", "8.2.1", "../8.2", "x.y", 8.2):
        with pytest.raises(ValueError, match="PHP version"):
            _names.pool_file(bad, "shop", "production")
    with pytest.raises(ValueError, match="site name"):
        _names.pool_file("8.2", "root", "production")

# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters over the names of docs/contracts.md; the derivation itself lives in module_utils/_names.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible_collections.pressluft.wordpress.plugins.module_utils._names import env_names as _env_names
from ansible_collections.pressluft.wordpress.plugins.module_utils._names import validate_domain


def env_names(site, env='production'):
    """All names derived from a site and environment."""
    try:
        return _env_names(site, env)
    except ValueError as exc:
        raise AnsibleFilterError('pressluft.wordpress.env_names: %s' % exc) from None


def valid_domain(domains):
    """The domain, or list of domains, unchanged once each is a valid host name."""
    items = domains if isinstance(domains, (list, tuple)) else [domains]
    try:
        for item in items:
            validate_domain(item)
    except ValueError as exc:
        raise AnsibleFilterError('pressluft.wordpress.valid_domain: %s' % exc) from None
    return domains


class FilterModule(object):
    def filters(self):
        return {'env_names': env_names, 'valid_domain': valid_domain}

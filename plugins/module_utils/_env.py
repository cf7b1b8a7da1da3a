# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Setup shared by the environment-scoped modules: options, name checks, the fencing check.

The options are documented once in doc_fragments/env.py (site, env) and doc_fragments/fencing.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pressluft.wordpress.plugins.module_utils._fencing import FENCING_ARGSPEC, fence
from ansible_collections.pressluft.wordpress.plugins.module_utils._names import DEFAULT_ENV, env_names

ENV_ARGSPEC = dict(
    site=dict(type='str', required=True),
    env=dict(type='str', default=DEFAULT_ENV),
)

# Modules that run WP-CLI in the environment (doc_fragments/wp_cli.py); check_run_as() fills run_as.
WP_CLI_ARGSPEC = dict(
    wp_cli=dict(type='path', default='/usr/local/bin/wp'),
    run_as=dict(type='str', aliases=['php_user']),
)


def check_run_as(params, names):
    """Default run_as to the environment's user; refuse root (WP-CLI runs the site's PHP)."""
    params['run_as'] = params['run_as'] or names['user']
    if params['run_as'] == 'root':
        raise ValueError('run_as must not be root: WP-CLI runs as the environment user')


def env_argument_spec(fencing=True):
    """A new dict of the options every environment-scoped module has (fencing ones unless read-only)."""
    spec = copy.deepcopy(ENV_ARGSPEC)
    if fencing:
        spec.update(copy.deepcopy(FENCING_ARGSPEC))
    return spec


def env_module(argument_spec, check=None, fencing=True, **kwargs):
    """Create the AnsibleModule of an environment-scoped module; return it and the environment's names.

    argument_spec holds the module's own options; kwargs go to AnsibleModule (check mode is always
    supported). Bad site or env names, and the ValueError that check(params, names) raises for the
    module's own input, fail the module before the fencing token is checked and recorded, so refused
    input changes nothing. check may also fill derived defaults into params.
    """
    spec = env_argument_spec(fencing)
    spec.update(argument_spec)
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True, **kwargs)
    try:
        names = env_names(module.params['site'], module.params['env'])
        if check is not None:
            check(module.params, names)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    if fencing:
        fence(module, module.params['site'])
    return module, names

# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The options of module_utils/_env.py WP_CLI_ARGSPEC, for modules that run WP-CLI in an environment.
    DOCUMENTATION = r'''
options:
  wp_cli:
    description: Path of WP-CLI on the node.
    type: path
    default: /usr/local/bin/wp
  run_as:
    description: User that runs WP-CLI; defaults to the environment's user C(<site>_<env>). Never C(root).
    type: str
    aliases: [php_user]
'''

# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The options of module_utils/_secrets.py SECRETS_ARGSPEC (the environment's secrets file).
    DOCUMENTATION = r'''
options:
  secrets_dir:
    description: Directory of the secrets files, created C(0700) root when missing.
    type: path
    default: /etc/pressluft/secrets
  initial_secrets:
    description:
      - Values to use instead of generated ones for keys the secrets file does not hold yet, for example
        the passwords the Pressluft control plane keeps in its secret store.
      - Only C(db_password), C(redis_password) and C(wordpress_admin_password) are accepted.
        A value already in the file is never replaced.
      - Not a no_log option, since the module returns the secrets anyway (Ansible would otherwise mask
        the returned values equal to these); use C(no_log) on the task, which also keeps them out of
        the node's log.
    type: dict
    default: {}
'''

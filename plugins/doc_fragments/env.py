# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The options of module_utils/_env.py ENV_ARGSPEC; names as in docs/contracts.md "Names".
    DOCUMENTATION = r'''
options:
  site:
    description: Site name (2-20 lowercase letters and digits, starting with a letter, not reserved).
    type: str
    required: true
  env:
    description: Environment name (2-11 lowercase letters and digits, starting with a letter).
    type: str
    default: production
'''

# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The usual meaning of the attributes; a module gives each one's support, and its own description
    # only where it differs (as community.mysql keeps attributes short).
    DOCUMENTATION = r'''
attributes:
  check_mode:
    description: Can run in check mode and predict changes without modifying the target.
  diff_mode:
    description: Returns details on what has changed in diff mode.
'''

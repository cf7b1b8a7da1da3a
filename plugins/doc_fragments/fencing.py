# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r'''
options:
  fencing_token:
    description:
      - Monotonic per-site token of the job that runs this task
        (the Pressluft worker passes C(pressluft_fencing_token)).
      - A token lower than the last one recorded for the site fails the task
        with C(stale_fencing_token=true) and changes nothing.
      - An equal or higher token is recorded (under an exclusive lock held
        until the module exits) unless in check mode.
      - Omit it when running plain Ansible without the control plane; then no fencing takes place.
    type: int
  fencing_dir:
    description:
      - Directory holding one token file per site, created C(0700) root when missing.
    type: path
    default: /var/lib/pressluft/fencing
'''

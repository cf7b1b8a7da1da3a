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
      - Compared with the site's record in O(fencing_dir) only when both belong to the same
        site incarnation (O(fencing_incarnation)). A lower token, or an equal one applied by
        another run (O(fencing_run)), fails the task with C(stale_fencing_token=true) and changes nothing.
      - When the record belongs to another incarnation that is still live (another control plane,
        or an older life of the site), the task fails the same way; a record whose incarnation was
        retired (the site was deleted) is taken over by the new incarnation.
      - An accepted token is recorded (under an exclusive lock held until the module exits) unless in
        check mode.
      - Omit it when running plain Ansible without the control plane; then no fencing takes place.
    type: int
  fencing_incarnation:
    description:
      - Id of the site incarnation the job works for (the worker passes C(pressluft_fencing_incarnation));
        a site re-created under a deleted name is a new incarnation.
      - 1-64 letters, digits, C(_) or C(-).
    type: str
  fencing_run:
    description:
      - Id of the run of the job (the worker passes C(pressluft_fencing_run)). The tasks of one run
        share a token; any other run with that token is refused.
      - 1-64 letters, digits, C(_) or C(-).
    type: str
  fencing_dir:
    description:
      - Directory holding one record per site, created C(0700) root when missing.
    type: path
    default: /var/lib/pressluft/fencing
'''

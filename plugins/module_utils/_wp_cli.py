# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""WP-CLI as an environment's user, the one way every module runs it.

Always with --skip-plugins --skip-themes: a module reads or changes WordPress's data, and no plugin or theme
code may run (or break) while it does. The options are WP_CLI_ARGSPEC (module_utils/_env.py).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import pwd


class WpCliError(Exception):
    """A WP-CLI command failed; the message names the command, the environment, the exit code and stderr."""


class WpCli(object):
    """`wp --path=PATH` as USER: through runuser when the module runs as root, else only as USER itself."""

    def __init__(self, module, user, path, cwd=None, label=None):
        self.module = module
        self.cwd = cwd or path
        self.label = ' (%s)' % label if label else ''
        prefix = []
        if os.geteuid() == 0:
            prefix = [module.get_bin_path('runuser', required=True), '-u', user, '--']
        elif pwd.getpwuid(os.geteuid()).pw_name != user:
            raise WpCliError('WP-CLI must run as %s: run this module as root (become) or as that user' % user)
        self.base = [*prefix, module.params['wp_cli'], '--path=%s' % path, '--skip-plugins', '--skip-themes']

    def run(self, args, data=None, check=True, what=None):
        """(rc, stdout, stderr); raises WpCliError on a non-zero exit unless check is false.

        what names the command in the error (default: wp and its first two arguments).
        """
        rc, out, err = self.module.run_command(self.base + list(args), data=data, cwd=self.cwd,
                                               binary_data=False)
        if check and rc != 0:
            detail = (err.strip() or out.strip())[-2000:]
            what = what or 'wp %s' % ' '.join(args[:2])
            raise WpCliError('%s%s failed (rc=%d): %s' % (what, self.label, rc, detail))
        return rc, out, err

    def out(self, args, data=None, what=None):
        """stdout of a command that must succeed."""
        return self.run(args, data=data, what=what)[1]

# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A command run beside a module's other work (run_command waits for each command to end)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import subprocess


class BackgroundError(Exception):
    """The command failed; the message names it, its exit code and the end of its stderr."""


def start(argv):
    """Start argv (a list, no shell) with stdout discarded and stderr kept for finish()."""
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def finish(proc, what):
    """Wait for proc; raise BackgroundError naming `what` when it failed."""
    err = proc.communicate()[1].decode('utf-8', 'replace').strip()
    if proc.returncode != 0:
        raise BackgroundError('%s failed (rc=%d): %s' % (what, proc.returncode, err[-2000:]))


def stop(proc):
    """Kill proc and reap it (the module fails for another reason)."""
    proc.kill()
    proc.wait()

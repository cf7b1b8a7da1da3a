# Copyright: Pressluft developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Work run beside a module's: a command while the module goes on (run_command waits for each command to end),
or a function that outlives the module run (detach)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess
import sys


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


def detach(work):
    """Run work() in a grandchild in a session of its own, without the module's stdin, stdout and stderr (so
    the module run, and Ansible's SSH channel, end at once): the double fork Ansible's async_wrapper does.
    Returns in the module at once. work() reports through files of its own, and may use only what the
    module has imported already (AnsiballZ removes its payload when the module exits)."""
    sys.stdout.flush()
    sys.stderr.flush()
    child = os.fork()
    if child:
        os.waitpid(child, 0)  # the first child exits as soon as it forked the worker
        return
    code = 1
    try:
        os.setsid()
        if os.fork():
            code = 0
        else:
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            work()
            code = 0
    finally:
        os._exit(code)  # never back into the module's exit path

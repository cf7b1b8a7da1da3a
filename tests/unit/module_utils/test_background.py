"""module_utils/_background.py: a command run beside a module's other work."""

from __future__ import annotations

import pytest
from ansible_collections.pressluft.wordpress.plugins.module_utils import _background as background


def test_finish_returns_after_success_and_names_a_failure_with_its_stderr():
    background.finish(background.start(["true"]), "nothing")
    with pytest.raises(background.BackgroundError, match=r"copying the uploads failed \(rc=3\): the reason"):
        failing = background.start(["sh", "-c", "echo the reason >&2; exit 3"])
        background.finish(failing, "copying the uploads")


def test_stop_kills_and_reaps():
    proc = background.start(["sleep", "60"])
    background.stop(proc)
    assert proc.returncode is not None and proc.returncode < 0

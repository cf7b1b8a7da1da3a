"""test_cli.py's control-plane fixtures for the other CLI test files; the fuzz tests' input count."""

import time

from tests.unit.cli.test_cli import active_node, env, upgraded  # noqa: F401

# test_cli_fuzz.py counts the inputs it ran; the count and the time are printed after the run.
FUZZ = {"inputs": 0, "started": 0.0}


def pytest_sessionstart(session) -> None:
    FUZZ["started"] = time.monotonic()


def pytest_terminal_summary(terminalreporter) -> None:
    if FUZZ["inputs"]:
        took = time.monotonic() - FUZZ["started"]
        terminalreporter.write_line(f"fuzz: {FUZZ['inputs']} generated inputs in {took:.0f} s")

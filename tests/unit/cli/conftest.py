"""test_cli.py's control-plane fixtures for the other CLI test files."""

from tests.unit.cli.test_cli import active_node, env, upgraded  # noqa: F401

"""Operating a control plane: doctor, metrics, drift checks, the scheduler and the systemd units.

A layer above services and execution (pyproject's import contract): it reads the database through
storage and runs check-mode playbooks through execution, and is called by the CLI only.
"""

"""Execution: the worker loop, the runner (a job -> a playbook run) and the ansible-runner launcher."""

"""Pressluft control plane: models, state machines, job queue and the ansible-runner launcher."""

__version__ = "1.0.0.dev0"

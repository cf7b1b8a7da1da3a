"""Cloud provider accounts: talking to a provider's API from the control plane (not from playbooks)."""

"""The real-node test rig: podman systemd nodes, the local node, Ansible and PostgreSQL helpers."""

"""What the provisioned node image's tag depends on (tests/rig/provisioned.py): a change to any file
that shapes a provisioned node must change the tag, or tests would run on a stale image."""

from __future__ import annotations

from pathlib import Path

from tests.rig import provisioned

PLAYBOOK = """- hosts: all
  tasks:
    - ansible.builtin.include_role:
        name: pressluft.wordpress.node_a
"""


def _tree(root: Path) -> None:
    files = {
        "playbooks/node_provision.yml": PLAYBOOK,
        "roles/node_a/tasks/main.yml": "- name: Step\n  ansible.builtin.command: [true]\n",
        "roles/node_a/meta/main.yml": "dependencies:\n  - role: node_b\n",
        "roles/node_a/templates/x.conf.j2": "x\n",
        "roles/node_b/tasks/main.yml": "- name: Own module\n  pressluft.wordpress.thing:\n    x: 1\n",
        "roles/site_c/tasks/main.yml": "- name: Not reached\n  ansible.builtin.command: [true]\n",
        "plugins/modules/thing.py": "# module\n",
        "plugins/modules/other.py": "# not used by a node role\n",
        "plugins/module_utils/_shared.py": "# used by thing\n",
        "plugins/filter/names.py": "# filters are found by name only in templates: all count\n",
        "tests/rig/node.Containerfile": "FROM x\n",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def test_recipe_is_the_playbook_and_what_it_reaches(tmp_path):
    _tree(tmp_path)
    found = {str(p.relative_to(tmp_path)) for p in provisioned.recipe_files(tmp_path)}
    assert found == {
        "playbooks/node_provision.yml",
        "roles/node_a/tasks/main.yml",
        "roles/node_a/meta/main.yml",
        "roles/node_a/templates/x.conf.j2",
        "roles/node_b/tasks/main.yml",
        "plugins/modules/thing.py",
        "plugins/module_utils/_shared.py",
        "plugins/filter/names.py",
        "tests/rig/node.Containerfile",
    }


def test_every_role_of_the_real_playbook_is_in_the_recipe():
    found = {p.relative_to(provisioned.ROOT).parts[1] for p in provisioned.recipe_files()
             if p.relative_to(provisioned.ROOT).parts[0] == "roles"}
    named = set(provisioned._FQCN.findall(provisioned.PLAYBOOK.read_text()))
    assert named and named <= found
    assert not any(r.startswith(("site_", "env_")) for r in found), "per-site roles do not shape the node"

"""ansible_exec.run_playbook(check=True), the engine of `pressluft check`: a task that would change a
file is reported with its diff, the file stays as it was, a no_log task's diff is hidden, secrets are
redacted, and a converged target reports nothing (a real local ansible-playbook run)."""

from __future__ import annotations

import sys

from pressluft_lib.execution import ansible_exec

PLAYBOOK = """- name: Converge one file
  hosts: all
  gather_facts: false
  tasks:
    - name: Write the managed file
      ansible.builtin.copy:
        dest: "{{ target }}"
        content: "managed = yes\\nsecret = {{ pressluft_db_password }}\\n"
        mode: "0600"
    - name: Write the quiet file
      ansible.builtin.copy:
        dest: "{{ target }}.quiet"
        content: "quiet\\n"
        mode: "0600"
      no_log: true
"""


def run(tmp_path, target):
    pb = tmp_path / "converge.yml"
    pb.write_text(PLAYBOOK)
    host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    return ansible_exec.run_playbook(
        pb, data_dir=tmp_path / "data", inventory={"all": {"hosts": {"n1": host}}},
        extravars={"target": str(target)}, secret_vars={"pressluft_db_password": "s3cr3t-value"}, check=True,
    )


def test_drift_is_reported_with_its_diff_and_nothing_changes(tmp_path):
    target = tmp_path / "managed.conf"
    target.write_text("managed = no\nsecret = s3cr3t-value\n")
    (tmp_path / "managed.conf.quiet").write_text("hand edit\n")
    out = run(tmp_path, target)
    assert out.state == "succeeded", out.failure
    by_task = {c["task"]: c for c in out.changes}
    # A no_log result is censored, even whether it changed: the host's changed count tells.
    assert set(by_task) == {"Write the managed file", "1 task(s) with hidden output (no_log)"}
    diff = by_task["Write the managed file"]["diff"]
    assert "-managed = no" in diff and "+managed = yes" in diff
    assert "s3cr3t-value" not in str(out.changes)
    assert by_task["1 task(s) with hidden output (no_log)"]["diff"] == "(hidden: no_log)"
    assert target.read_text() == "managed = no\nsecret = s3cr3t-value\n", "check mode changed the file"


def test_a_converged_target_reports_nothing(tmp_path):
    target = tmp_path / "managed.conf"
    target.write_text("managed = yes\nsecret = s3cr3t-value\n")
    target.chmod(0o600)
    quiet = tmp_path / "managed.conf.quiet"
    quiet.write_text("quiet\n")
    quiet.chmod(0o600)
    out = run(tmp_path, target)
    assert (out.state, out.changes) == ("succeeded", [])

"""A failed job says why in error_message: the failing task and its message, redacted and bounded
(issue 13, finding 4). Real ansible-playbook runs of the tiny playbooks against this machine."""

from __future__ import annotations

import socket

from click.testing import CliRunner
from pressluft_cli.main import cli

from pressluft_lib.execution.ansible_exec import MESSAGE_LIMIT
from pressluft_lib.storage.models import Node

from .test_runner import SECRET, claim_and_run, enqueue, make_site


def run(cp, type_: str, payload: dict, **where):
    job = claim_and_run(cp, enqueue(cp, type_, payload, **where))
    assert (job.state, job.error_code) == ("failed", "playbook_failed")
    return job


def test_the_failing_task_and_its_message_redacted(cp):
    make_site(cp)
    job = run(cp, "tiny_site", {"tiny_fail": True}, site="shop", env="production")
    assert (
        job.error_message
        == "task 'Fail when asked, showing the secret in the message' failed on local: boom ********"
    )


def test_bounded_and_a_secret_at_the_cut_is_still_redacted(cp):
    make_site(cp)
    # The secret starts just before the limit: cutting first and redacting after would leak its start.
    pad = (
        MESSAGE_LIMIT
        - len("task 'Fail when asked, showing the secret in the message' failed on local: boom ")
        - 5
    )
    job = run(cp, "tiny_site", {"tiny_fail": True, "tiny_fail_pad": pad}, site="shop", env="production")
    assert len(job.error_message) <= MESSAGE_LIMIT
    assert job.error_message.endswith("…")
    assert SECRET[:4] not in job.error_message


def test_no_log_failure_stays_hidden(cp):
    make_site(cp)
    job = run(cp, "tiny_site", {"tiny_fail_quietly": True}, site="shop", env="production")
    assert (
        job.error_message
        == "task 'Fail quietly when asked' failed on local: the output has been hidden (no_log)"
    )
    assert SECRET not in job.error_message


def test_a_loop_names_the_first_failed_item(cp):
    job = run(cp, "tiny", {"tiny_fail_loop": True}, node="local")
    assert job.error_message.startswith("task 'Fail in a loop when asked' failed on local: ")
    assert "item one broke" in job.error_message


def test_an_unreachable_host_says_so(cp):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with cp.sf.begin() as s:
        s.add(Node(name="gone", host="127.0.0.1", port=port, local=False, provider="static", state="active"))
    job = run(cp, "tiny", {}, node="gone")
    # The first task that connects (debug runs on the controller) hides its result: no_log censors
    # even the connection error, but not that the host was unreachable.
    assert job.error_message == (
        "host gone unreachable (task 'Use the secret quietly'): the output has been hidden (no_log)"
    )


def test_a_play_that_cannot_start_gives_ansibles_error(cp):
    job = run(cp, "tiny_broken", {"tiny_serial": "tiny-not-a-batch-size"}, node="local")
    assert job.error_message.startswith("ansible-playbook: ")
    assert "tiny-not-a-batch-size" in job.error_message, job.error_message
    assert len(job.error_message) <= MESSAGE_LIMIT


def test_jobs_list_shortens_it_and_jobs_show_has_it_whole(cp):
    make_site(cp)
    job = run(cp, "tiny_site", {"tiny_fail": True, "tiny_fail_pad": 200}, site="shop", env="production")
    listed = CliRunner().invoke(cli, ["--db", cp.url, "jobs", "list"])
    assert listed.exit_code == 0, listed.output
    rows = [line for line in listed.stdout.splitlines() if "task 'Fail when" in line]
    assert len(rows) == 1 and job.error_message not in rows[0] and "…" in rows[0], listed.stdout
    shown = CliRunner().invoke(cli, ["--db", cp.url, "jobs", "show", str(job.id)])
    assert shown.exit_code == 0, shown.output
    assert job.error_message in shown.stdout

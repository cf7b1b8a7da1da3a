"""Where the playbooks of a test run spend their time, from the JSON PRESSLUFT_TEST_PLAYBOOK_LOG kept.

    PRESSLUFT_TEST_PLAYBOOK_LOG=build/playbooks .venv/bin/python -m pytest tests/integration/test_deploy.py
    .venv/bin/python -m tests.rig.profile build/playbooks [--top 30]

Prints the time per playbook and the tasks with the most time in total (summed over hosts and runs).
"""

from __future__ import annotations

import argparse
import collections
import json
from datetime import datetime
from pathlib import Path


def seconds(duration: dict) -> float:
    start, end = (datetime.fromisoformat(duration[k].replace("Z", "+00:00")) for k in ("start", "end"))
    return (end - start).total_seconds()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("directory", type=Path)
    ap.add_argument("--top", type=int, default=30)
    args = ap.parse_args()
    per_play: dict[str, list[float]] = collections.defaultdict(list)
    per_task: collections.Counter[str] = collections.Counter()
    runs: collections.Counter[str] = collections.Counter()
    for path in sorted(args.directory.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError:
            continue
        playbook = path.stem.split("-", 2)[2]
        total = 0.0
        for play in data.get("plays", []):
            for task in play.get("tasks", []):
                took = seconds(task["task"]["duration"]) if "end" in task["task"].get("duration", {}) else 0.0
                total += took
                key = f"{playbook}: {task['task']['name']}"
                per_task[key] += took
                runs[key] += 1
        per_play[playbook].append(total)
    print(f"{'playbook':<28}{'runs':>6}{'total s':>10}{'mean s':>9}")
    for name, times in sorted(per_play.items(), key=lambda kv: -sum(kv[1])):
        print(f"{name:<28}{len(times):>6}{sum(times):>10.1f}{sum(times) / len(times):>9.1f}")
    print(f"\n{'task (summed over runs)':<90}{'runs':>6}{'total s':>9}")
    for key, took in per_task.most_common(args.top):
        print(f"{key[:89]:<90}{runs[key]:>6}{took:>9.1f}")


if __name__ == "__main__":
    main()

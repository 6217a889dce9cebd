"""The outcome log: the JSONL file stays the truth; its index catches up with whatever any process appended."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from debrief.server.store.outcome_log import OutcomeLog

NOW = datetime.now(UTC)


def outcome_line(number: int, *, group: str, key: str | None = None, age_days: float = 0) -> dict[str, Any]:
    recorded = (NOW - timedelta(days=age_days)).isoformat().replace("+00:00", "Z")
    outcome = {
        "outcome_id": f"out-{number:012x}",
        "namespace": "ns",
        "task": f"task {number}",
        "task_key": key,
        "attempt": "a",
        "reward": 1.0,
        "group_id": group,
        "recorded_at": recorded,
    }
    return {"type": "outcome", "outcome": outcome, "vector": [float(number), 1.0, 0.0]}


def reflection_line(*outcome_ids: str) -> dict[str, Any]:
    return {"type": "reflection", "reflection": {"outcome_ids": list(outcome_ids), "status": "applied"}}


def test_lines_appended_by_another_process_are_seen_by_the_next_query(tmp_path: Path) -> None:
    log = OutcomeLog(tmp_path)
    log.append("ns", outcome_line(1, group="g"))
    assert [item["outcome_id"] for item in log.open_members("ns", "g", limit=8)] == ["out-000000000001"]
    # Another process appends to the same file (under the same lock, which it has released again).
    with log.path("ns").open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(outcome_line(2, group="g")) + "\n")
        handle.write(json.dumps(reflection_line("out-000000000001")) + "\n")
    assert [item["outcome_id"] for item in log.open_members("ns", "g", limit=8)] == ["out-000000000002"]
    other = OutcomeLog(tmp_path)
    assert [item["outcome_id"] for item in other.by_ids("ns", ["out-000000000002", "out-000000000001", "x"])] == [
        "out-000000000002",
        "out-000000000001",
    ]


def test_a_line_still_being_written_waits_and_a_torn_one_is_skipped(tmp_path: Path) -> None:
    log = OutcomeLog(tmp_path)
    log.append("ns", outcome_line(1, group="g"))
    whole = json.dumps(outcome_line(2, group="g"))
    with log.path("ns").open("a", encoding="utf-8") as handle:
        handle.write(whole[:40])
    assert len(log.page("ns", offset=0, limit=10)[0]) == 1
    with log.path("ns").open("a", encoding="utf-8") as handle:
        handle.write(whole[40:] + "\n{not json\n")
    log.append("ns", outcome_line(3, group="g"))
    assert [item["outcome_id"] for item in log.page("ns", offset=0, limit=10)[0]] == [
        "out-000000000003",
        "out-000000000002",
        "out-000000000001",
    ]


def test_groups_pages_and_recent_unkeyed_outcomes_come_from_the_index(tmp_path: Path) -> None:
    log = OutcomeLog(tmp_path)
    for number in range(30):
        keyed = number % 3 == 0
        line = outcome_line(number, group=f"g{number % 2}", key="k" if keyed else None, age_days=30 - number)
        log.append("ns", line)
    members = log.open_members("ns", "g1", limit=4)
    assert [item["outcome_id"] for item in members] == [f"out-{n:012x}" for n in (23, 25, 27, 29)]
    page, more = log.page("ns", offset=5, limit=5, group_id="g0")
    assert [item["outcome_id"] for item in page] == [f"out-{n:012x}" for n in (18, 16, 14, 12, 10)] and more
    recent = log.recent_unkeyed("ns", since=NOW - timedelta(days=5.5), limit=3)
    assert [item["outcome_id"] for item, _ in recent] == [f"out-{n:012x}" for n in (26, 28, 29)]
    assert list(recent[-1][1]) == [29.0, 1.0, 0.0]


def test_a_replaced_file_rebuilds_the_index(tmp_path: Path) -> None:
    log = OutcomeLog(tmp_path)
    for number in range(3):
        log.append("ns", outcome_line(number, group="g"))
    log.path("ns").write_text(json.dumps(outcome_line(9, group="g")) + "\n", encoding="utf-8")
    assert [item["outcome_id"] for item in log.page("ns", offset=0, limit=10)[0]] == ["out-000000000009"]

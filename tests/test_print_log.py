"""The print jobs of dispensers without a printer (gateway/print_log.py): today's only, since
each holds the ticket's page URL and its token."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

from gateway.print_log import PrintLog

TOKYO = timezone(timedelta(hours=9))


def jobs(path: Path) -> list[str]:
    return [json.loads(line)["ticket"] for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_new_business_day_replaces_the_file_and_a_restart_appends_to_today(tmp_path: Path) -> None:
    path = tmp_path / "office.db.prints.jsonl"
    day1 = datetime(2027, 3, 15, 9, 0, tzinfo=TOKYO)
    log = PrintLog(path, TOKYO)
    for i, at in enumerate((day1, day1 + timedelta(hours=8))):
        log.write({"ticket": f"A-00{i + 1}", "issued_at": at.isoformat(), "url": f"https://x/t/tok{i}"}, at)
    assert jobs(path) == ["A-001", "A-002"]
    again = PrintLog(path, TOKYO)  # the gateway restarted the same day: appended
    again.write({"ticket": "A-003", "issued_at": day1.isoformat()}, day1 + timedelta(hours=9))
    assert jobs(path) == ["A-001", "A-002", "A-003"]
    # 00:30 in Tokyo is the next day even where UTC is still on the 15th.
    day2 = datetime(2027, 3, 16, 0, 30, tzinfo=TOKYO)
    PrintLog(path, TOKYO).write({"ticket": "A-001", "issued_at": day2.isoformat()}, day2)
    assert jobs(path) == ["A-001"] and "tok0" not in path.read_text(encoding="utf-8")


def test_an_unreadable_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "office.db.prints.jsonl"
    path.write_text("not json\n", encoding="utf-8")
    at = datetime(2027, 3, 15, 9, 0, tzinfo=TOKYO)
    PrintLog(path, TOKYO).write({"ticket": "A-001", "issued_at": at.isoformat()}, at)
    assert jobs(path) == ["A-001"]

"""The print jobs of dispensers with no printer configured, as JSON lines in `<journal>.prints.jsonl`
(docs/config.md) — today's only.

Owns that file. A job holds the ticket's page URL, whose token is the resident's credential to
their ticket page: like the journal's tokens (gateway/journal.py, the scrub of earlier days), it is
kept only for its business day. The first job of a new business day replaces the file.
"""

from __future__ import annotations

import json
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any


class PrintLog:
    def __init__(self, path: Path, tz: tzinfo) -> None:
        self.path = path
        self.tz = tz
        self._day: str | None = None  # the business day the file holds (None: not read yet)

    def write(self, job: dict[str, Any], issued_at: datetime) -> None:
        day = issued_at.astimezone(self.tz).date().isoformat()
        if self._day is None:
            self._day = self._file_day()
        with open(self.path, "a" if self._day == day else "w", encoding="utf-8") as f:
            f.write(json.dumps(job, ensure_ascii=False) + "\n")
        self._day = day

    def _file_day(self) -> str | None:
        """The day of the file's first job (a restarted gateway appends to today's)."""
        try:
            with open(self.path, encoding="utf-8") as f:
                first = json.loads(f.readline())
            return datetime.fromisoformat(first["issued_at"]).astimezone(self.tz).date().isoformat()
        except (OSError, ValueError, KeyError, TypeError):
            return None  # none, or not readable: replaced by the next job

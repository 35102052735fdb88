"""The predictions table: one CSV row per `ticket_issued`, as `counterfloor predict` writes it.

Owns the format — the header `ticket,service,issued_ts,predicted_wait_s,p10_s,p90_s`, seconds
with one decimal — written and read back (for scoring). Pure: text lines in and out.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator

from office.waittime.predictors import Prediction
from office.waittime.replay import Issued

HEADER = ("ticket", "service", "issued_ts", "predicted_wait_s", "p10_s", "p90_s")


class TableError(ValueError):
    pass


def rows(issued: Iterable[Issued]) -> Iterator[str]:
    """The table's lines (header first), each ending in a newline."""
    yield ",".join(HEADER) + "\n"
    for row in issued:
        p = row.prediction
        yield f"{_cell(row.ticket)},{_cell(row.service)},{row.issued_ts},{p.mean:.1f},{p.p10:.1f},{p.p90:.1f}\n"


def _cell(text: str) -> str:
    """A text cell, quoted only if CSV needs it (ticket ids and service ids rarely do)."""
    if any(ch in text for ch in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def parse(lines: Iterable[str]) -> list[Issued]:
    """The rows of a predictions table; TableError naming the line if it is not one."""
    reader = csv.reader(lines)
    out: list[Issued] = []
    for row in reader:
        if reader.line_num == 1:
            if tuple(row) != HEADER:
                raise TableError(f"line 1: the header must be {','.join(HEADER)}")
            continue
        if not row:
            continue
        try:
            ticket, service, issued_ts, mean, p10, p90 = row
            prediction = Prediction(float(mean), float(p10), float(p90))
        except ValueError:
            raise TableError(f"line {reader.line_num}: not a predictions row: {','.join(row)!r}") from None
        out.append(Issued(ticket, service, issued_ts, prediction))
    return out

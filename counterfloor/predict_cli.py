"""`counterfloor predict`: replay a day's event log and write every ticket's predicted wait.

A thin shell over office.waittime (docs/waittime.md): read past days' event logs (files, or
folders of *.jsonl) and the day to replay, train the chosen predictor on the past days, replay
the day and write one CSV row per `ticket_issued`. Bad arguments or input are one line,
`counterfloor predict: …`, and exit status 2; nothing is written then.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn, TextIO

import orjson

from counterfloor.outputs import output_problem
from office.waittime import PREDICTORS, RecordError, read_record, replay, split_days, train
from office.waittime import records as r
from office.waittime.table import rows

EXIT_USAGE = 2


class PredictError(Exception):
    """Bad arguments or input: the message is the whole line after `counterfloor predict: `."""


def _fail(message: str) -> NoReturn:
    sys.stderr.write(f"counterfloor predict: {message}\n")
    raise SystemExit(EXIT_USAGE)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "predict", help="replay a day's event log and write each ticket's predicted wait (docs/waittime.md)"
    )
    p.error = _fail  # type: ignore[method-assign]  # usage errors too: one line, not usage + error
    p.add_argument(
        "--history",
        nargs="+",
        required=True,
        type=Path,
        metavar="PATH",
        help="past days: event logs, or folders of *.jsonl",
    )
    p.add_argument("--trace", required=True, type=Path, metavar="DAY.jsonl", help="the day to replay")
    p.add_argument("--predictor", choices=PREDICTORS, default="best", help="default: best")
    p.add_argument("--out", required=True, type=Path, metavar="PREDS.csv", help="the predictions table to write")
    p.set_defaults(func=run)


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*.jsonl") if p.is_file())
    if path.is_file():
        return [path]
    raise PredictError(f"no such file or folder: {path}")


def _events(path: Path) -> Iterator[r.Event]:
    """The events of one event-log file; PredictError naming file and line if one is unreadable."""
    try:
        with open(path, "rb") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    raise PredictError(f"{path}:{n}: not JSON ({exc})") from None
                if not isinstance(record, dict):
                    raise PredictError(f"{path}:{n}: not a JSON object")
                try:
                    event = read_record(record)
                except RecordError as exc:
                    raise PredictError(f"{path}:{n}: {exc}") from None
                if event is not None:
                    yield event
    except OSError as exc:
        raise PredictError(f"cannot read {path}: {exc.strerror or exc}") from None


def run(args: argparse.Namespace, out: TextIO) -> int:
    try:
        return _run(args, out)
    except PredictError as exc:
        _fail(str(exc))


def _run(args: argparse.Namespace, out: TextIO) -> int:
    problem = output_problem(args.out)
    if problem:
        raise PredictError(f"--out: {problem}")
    if not args.trace.is_file():
        raise PredictError(f"--trace: no such file: {args.trace}")
    trace = list(_events(args.trace))
    trace_days = {(e.office, e.day) for e in trace if isinstance(e, r.TicketIssued | r.Schedule)}
    offices = {office for office, _ in trace_days if office}
    history: list[list[r.Event]] = []
    skipped: list[str] = []
    for path in args.history:
        for file in _files(path):
            if _same_file(file, args.trace):
                skipped.append(str(file))
                continue
            for day in split_days(_events(file)):
                key = (day[0].office, day[0].day)
                if key in trace_days:  # the day being predicted: learning from it would look ahead
                    skipped.append(f"{file} ({key[1]})")
                elif not offices or not key[0] or key[0] in offices:
                    history.append(day)
    if not history:
        where = " ".join(str(p) for p in args.history)
        why = f" of office {', '.join(sorted(offices))}" if offices else ""
        raise PredictError(f"no history{why}: no past day's events in {where}")
    for what in skipped:
        sys.stderr.write(f"counterfloor predict: not learning from {what}: it is the day replayed\n")
    predictor = train(args.predictor, history)
    tmp = Path(str(args.out) + ".partial")
    count = -1
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            for line in rows(replay(trace, predictor)):
                f.write(line)
                count += 1
        tmp.replace(args.out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise PredictError(f"--out: cannot write {args.out}: {exc.strerror or exc}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    out.write(f"{count} predictions ({args.predictor}, learned from {len(history)} days) written to {args.out}\n")
    return 0


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False

"""`counterfloor predict`: one CSV row per ticket issued (transferred and no-show tickets too,
with the service at issue), a prediction that only ever sees the events before it, fields it does
not need may be absent, and bad arguments are one line `counterfloor predict: …` with status 2."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from counterfloor.cli import event_log_line
from counterfloor.simulate import record_day
from office.config import OfficeConfig
from office.waittime import records as r
from office.waittime import replay, split_days, train
from office.waittime.table import parse
from tests.conftest import run_cli

DAYS = [date(2027, 2, 15), date(2027, 2, 16), date(2027, 2, 17)]


def _write_day(path: Path, config: OfficeConfig, day: date, seed: int) -> list[dict[str, Any]]:
    """A simulated day exported as `office export` writes it; its records."""
    lines = [event_log_line(e, config.id) for e in record_day(config, day, seed=seed).events]
    path.write_text("".join(lines), encoding="utf-8")
    return [json.loads(line) for line in lines]


@pytest.fixture(scope="module")
def days(oizumi: OfficeConfig, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[dict[str, Any]]]:
    """A folder of two past days, and the day to replay (with its records)."""
    root = tmp_path_factory.mktemp("waittime")
    (root / "history").mkdir()
    for seed, day in enumerate(DAYS[:2], 1):
        _write_day(root / "history" / f"oizumi-{day}.jsonl", oizumi, day, seed)
    trace = root / "trace.jsonl"
    return root / "history", trace, _write_day(trace, oizumi, DAYS[2], 7)


def _table(path: Path) -> list[list[str]]:
    return [line.split(",") for line in path.read_text(encoding="utf-8").splitlines()]


def test_one_row_per_ticket_issued_with_its_service_at_issue(
    days: tuple[Path, Path, list[dict[str, Any]]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history, trace, records = days
    out = tmp_path / "preds.csv"
    code, stdout, err = run_cli(capsys, "predict", "--history", str(history), "--trace", str(trace), "--out", str(out))
    assert (code, err) == (0, "")
    table = _table(out)
    assert table[0] == ["ticket", "service", "issued_ts", "predicted_wait_s", "p10_s", "p90_s"]
    issued = [rec for rec in records if rec["type"] == "ticket_issued"]
    assert [row[:3] for row in table[1:]] == [[rec["ticket"], rec["service"], rec["ts"]] for rec in issued]
    for row in table[1:]:
        mean, p10, p90 = map(float, row[3:])
        assert 0 <= p10 <= mean <= p90
    transferred = {rec["ticket"] for rec in records if rec["type"] == "transferred"}
    no_show = {rec["ticket"] for rec in records if rec["type"] == "no_show"}
    assert transferred and no_show  # the day has both, and both have their rows
    rows = {row[0]: row for row in table[1:]}
    assert transferred <= set(rows) and no_show <= set(rows)
    moved = next(rec for rec in records if rec["type"] == "transferred")
    assert rows[moved["ticket"]][1] == moved["from_service"] != moved["to_service"]
    assert f"{len(issued)} predictions (best, learned from 2 days) written to {out}" in stdout


def test_a_prediction_sees_only_the_events_before_it(
    days: tuple[Path, Path, list[dict[str, Any]]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The trace cut right after a ticket's issue gives that ticket the same row."""
    history, trace, records = days
    full = tmp_path / "full.csv"
    run_cli(capsys, "predict", "--history", str(history), "--trace", str(trace), "--out", str(full))
    rows = {row[0]: row for row in _table(full)[1:]}
    transferred = next(rec["ticket"] for rec in records if rec["type"] == "transferred")
    no_show = next(rec["ticket"] for rec in records if rec["type"] == "no_show")
    for ticket in (transferred, no_show):
        cut = next(i for i, rec in enumerate(records) if rec["type"] == "ticket_issued" and rec["ticket"] == ticket)
        short = tmp_path / f"cut-{ticket}.jsonl"
        short.write_text("".join(json.dumps(rec) + "\n" for rec in records[: cut + 1]), encoding="utf-8")
        out = tmp_path / f"cut-{ticket}.csv"
        assert run_cli(capsys, "predict", "--history", str(history), "--trace", str(short), "--out", str(out))[0] == 0
        assert _table(out)[-1] == rows[ticket]


def test_no_prediction_changes_when_the_day_is_cut_after_its_issue(
    days: tuple[Path, Path, list[dict[str, Any]]],
) -> None:
    """The same, for every 15th ticket of the day, with the predictor trained once."""
    history, _, records = days
    events = [e for rec in records if (e := r.read_record(rec)) is not None]
    past = [d for path in sorted(history.glob("*.jsonl")) for d in split_days(_read(path))]
    for name in ("best", "capacity", "erlangc"):
        predictor = train(name, past)
        full = list(replay(events, predictor))
        issues = [i for i, e in enumerate(events) if isinstance(e, r.TicketIssued)]
        for n, i in enumerate(issues[::15]):
            assert list(replay(events[: i + 1], predictor))[-1] == full[n * 15], (name, n)


def _read(path: Path) -> list[r.Event]:
    with open(path, encoding="utf-8") as f:
        return [e for line in f if (e := r.read_record(json.loads(line))) is not None]


def test_fields_prediction_does_not_need_may_be_absent(
    days: tuple[Path, Path, list[dict[str, Any]]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No token hashes and some fields of a later version: the same table."""
    history, trace, records = days
    bare = tmp_path / "bare.jsonl"
    bare.write_text(
        "".join(
            json.dumps({**{k: v for k, v in rec.items() if k != "token_hash"}, "lane": 3}) + "\n"
            for rec in [*records[:5], {"v": 1, "seq": 0, "ts": records[5]["ts"], "type": "x_future"}, *records[5:]]
        ),
        encoding="utf-8",
    )
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    run_cli(capsys, "predict", "--history", str(history), "--trace", str(trace), "--out", str(a))
    assert run_cli(capsys, "predict", "--history", str(history), "--trace", str(bare), "--out", str(b))[0] == 0
    assert a.read_text() == b.read_text()


def test_every_predictor_writes_its_table(
    days: tuple[Path, Path, list[dict[str, Any]]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history, trace, records = days
    issued = sum(rec["type"] == "ticket_issued" for rec in records)
    for name in ("naive", "capacity", "hol", "les", "erlangc"):
        out = tmp_path / f"{name}.csv"
        argv = ("predict", "--history", str(history), "--trace", str(trace), "--predictor", name, "--out", str(out))
        assert run_cli(capsys, *argv)[0] == 0
        assert len(parse(out.read_text().splitlines(keepends=True))) == issued


def test_the_day_replayed_is_never_learned_from(
    days: tuple[Path, Path, list[dict[str, Any]]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """History holding the trace itself (or the same day in another file) leaves it out."""
    history, trace, _ = days
    alone, mixed = tmp_path / "alone.csv", tmp_path / "mixed.csv"
    run_cli(capsys, "predict", "--history", str(history), "--trace", str(trace), "--out", str(alone))
    code, _, err = run_cli(
        capsys, "predict", "--history", str(history), str(trace), "--trace", str(trace), "--out", str(mixed)
    )
    assert code == 0
    assert err == f"counterfloor predict: not learning from {trace}: it is the day replayed\n"
    assert alone.read_text() == mixed.read_text()


def _fails(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code, out, err = run_cli(capsys, "predict", *argv)
    assert code == 2, err
    assert out == ""
    assert err.startswith("counterfloor predict: ") and err.count("\n") == 1, err
    return err


def test_bad_arguments_are_one_line_and_status_2(
    days: tuple[Path, Path, list[dict[str, Any]]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history, trace, records = days
    out = tmp_path / "p.csv"
    assert "--history" in _fails(capsys, "--trace", str(trace), "--out", str(out))
    assert "invalid choice" in _fails(
        capsys, "--history", str(history), "--trace", str(trace), "--predictor", "psychic", "--out", str(out)
    )
    missing = tmp_path / "nope.jsonl"
    assert str(missing) in _fails(capsys, "--history", str(history), "--trace", str(missing), "--out", str(out))
    assert str(missing) in _fails(capsys, "--history", str(missing), "--trace", str(trace), "--out", str(out))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no history" in _fails(capsys, "--history", str(empty), "--trace", str(trace), "--out", str(out))
    assert "no such directory" in _fails(
        capsys, "--history", str(history), "--trace", str(trace), "--out", str(tmp_path / "no" / "p.csv")
    )

    broken = tmp_path / "broken.jsonl"
    lines = [json.dumps(rec) for rec in records[:4]]
    broken.write_text("\n".join([*lines[:2], '{"v": 1, "type": "called", ', *lines[2:]]) + "\n")
    err = _fails(capsys, "--history", str(history), "--trace", str(broken), "--out", str(out))
    assert f"{broken}:3: not JSON" in err
    broken.write_text("\n".join([*lines, json.dumps({**records[4], "ts": 5})]) + "\n")
    err = _fails(capsys, "--history", str(broken), "--trace", str(trace), "--out", str(out))
    assert f"{broken}:5: " in err and "'ts'" in err
    broken.write_text("\n".join([*lines, "[1, 2]"]) + "\n")
    assert f"{broken}:5: not a JSON object" in _fails(
        capsys, "--history", str(broken), "--trace", str(trace), "--out", str(out)
    )
    assert not out.exists() and not list(tmp_path.glob("*.partial"))

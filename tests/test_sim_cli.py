"""`counterfloor sim`: simulated open days written as event-log files exactly as `office export`
writes them, reproducible day by day, every ticket accounted for, and one clear line for a bad
argument (docs/simulation.md)."""

from __future__ import annotations

import argparse
import io
import json
from collections import Counter
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from counterfloor import sim_cli
from counterfloor.simulate import DaySimulation
from gateway.journal import TicketJournal
from office.config import load_config
from office.estimate import WaitRange
from office.state import OfficeState

from .conftest import EXAMPLES, run_cli

NERIMA = str(EXAMPLES / "nerima.toml")
OIZUMI = str(EXAMPLES / "oizumi.toml")
# Oizumi from Thursday 25 March 2027: the temporary rush Saturday (27th) opens, Sunday does not.
OIZUMI_DAYS = ["2027-03-25", "2027-03-26", "2027-03-27", "2027-03-29"]
# Nerima from Friday 18 June 2027: open every Saturday, closed on Sundays.
NERIMA_DAYS = ["2027-06-18", "2027-06-19", "2027-06-21"]


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    sim_cli.add_arguments(parser)
    return parser.parse_args(list(argv))


def _write(out: Path, *argv: str) -> str:
    """Run the command in-process; its stdout."""
    stdout = io.StringIO()
    assert sim_cli.run(_args("--out", str(out), *argv), stdout) == 0
    return stdout.getvalue()


def _files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def _records(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.decode("utf-8").splitlines()]


def _tickets(data: bytes) -> int:
    return sum(r["type"] == "ticket_issued" for r in _records(data))


@pytest.fixture(scope="module")
def oizumi_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("sim") / "oizumi"
    return out, _write(out, "--config", OIZUMI, "--days", "4", "--start", OIZUMI_DAYS[0], "--seed", "3")


@pytest.fixture(scope="module")
def nerima_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "nerima"
    _write(out, "--config", NERIMA, "--days", "3", "--start", NERIMA_DAYS[0])
    return out


# -- the files ------------------------------------------------------------------------------------
def test_a_day_file_is_what_office_export_writes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """The same day played through a real journal and exported gives the same bytes."""
    _write(tmp_path / "sim", "--config", OIZUMI, "--days", "1", "--start", "2027-06-15", "--seed", "3")
    config = load_config(OIZUMI)
    journal = tmp_path / "j.sqlite"
    with TicketJournal.create(journal, config, Path(OIZUMI).read_text(encoding="utf-8")) as j:
        DaySimulation(config, date(2027, 6, 15), seed=3, office=j.office, execute=j.execute).run()
    exported = tmp_path / "export.jsonl"
    code, _, err = run_cli(capsys, "office", "export", "--journal", str(journal), "--date", "2027-06-15",
                           "--out", str(exported))  # fmt: skip
    assert code == 0, err
    assert _files(tmp_path / "sim") == {"oizumi-2027-06-15.jsonl": exported.read_bytes()}


def test_one_file_per_open_day_saturdays_by_the_calendar(oizumi_run: tuple[Path, str], nerima_run: Path) -> None:
    out, _ = oizumi_run
    assert list(_files(out)) == [f"oizumi-{d}.jsonl" for d in OIZUMI_DAYS]
    assert list(_files(nerima_run)) == [f"nerima-{d}.jsonl" for d in NERIMA_DAYS]
    # The Saturdays are real days: the Saturday plan, its counters, its residents.
    for data in (_files(out)["oizumi-2027-03-27.jsonl"], _files(nerima_run)["nerima-2027-06-19.jsonl"]):
        schedule = _records(data)[0]
        assert [p["mode"] for p in schedule["periods"]] == ["saturday"]
        assert _tickets(data) > 100


def test_seq_is_gapless_from_1_and_every_record_is_of_its_day(oizumi_run: tuple[Path, str], nerima_run: Path) -> None:
    for name, data in {**_files(oizumi_run[0]), **_files(nerima_run)}.items():
        office, day = name.removesuffix(".jsonl").split("-", 1)
        records = _records(data)
        assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
        assert records[0]["type"] == "schedule" and records[0]["new_day"] is True and records[0]["date"] == day
        stamps = [datetime.fromisoformat(r["ts"]) for r in records]
        assert stamps == sorted(stamps) and {s.date().isoformat() for s in stamps} == {day}
        assert all(r["v"] == 1 and r["office"] == office and "token" not in r for r in records)
    hashes = [r["token_hash"] for d in _files(oizumi_run[0]).values() for r in _records(d) if "token_hash" in r]
    assert len(hashes) == len(set(hashes))  # tokens are new every day


def test_every_ticket_issued_is_accounted_for(oizumi_run: tuple[Path, str], nerima_run: Path) -> None:
    """Each ticket is called, then ends served or a final no-show (a resident who gave up is found
    only then); requeued no-shows wait again. None is left waiting at the end of the day."""
    ends: Counter[str] = Counter()
    for data in [*_files(oizumi_run[0]).values(), *_files(nerima_run).values()]:
        state: dict[str, str] = {}
        called: set[str] = set()
        for r in _records(data):
            t: str = r.get("ticket", "")
            if r["type"] == "ticket_issued":
                assert t not in state
                state[t] = "waiting"
            elif r["type"] in ("called", "recalled"):
                assert state[t] == "waiting" or (r["type"] == "recalled" and state[t] == "called"), r
                state[t] = "called"
                called.add(t)
            elif r["type"] == "no_show":
                assert state[t] == "called"
                state[t] = "waiting" if r["requeued"] else "no_show"
                ends["requeued" if r["requeued"] else "no_show"] += 1
            elif r["type"] == "transferred":
                state[t] = "waiting"
                ends["transferred"] += 1
            elif r["type"] == "served":
                assert state[t] == "called"
                state[t] = "served"
        assert set(state.values()) <= {"served", "no_show"}, Counter(state.values())
        assert called == set(state)
        ends.update(state.values())
    # Every path was taken: the counts say the data hold them, not only the happy one.
    assert ends["served"] > 1000 and ends["no_show"] > 10 and ends["requeued"] > 10 and ends["transferred"] > 5


def test_the_same_seed_writes_the_same_bytes_and_a_day_alone_is_that_day(
    oizumi_run: tuple[Path, str], tmp_path: Path
) -> None:
    out, _ = oizumi_run
    first = _files(out)
    _write(tmp_path / "again", "--config", OIZUMI, "--days", "4", "--start", OIZUMI_DAYS[0], "--seed", "3")
    assert _files(tmp_path / "again") == first
    _write(tmp_path / "alone", "--config", OIZUMI, "--days", "1", "--start", OIZUMI_DAYS[2], "--seed", "3")
    name = f"oizumi-{OIZUMI_DAYS[2]}.jsonl"
    assert _files(tmp_path / "alone") == {name: first[name]}
    _write(tmp_path / "other", "--config", OIZUMI, "--days", "4", "--start", OIZUMI_DAYS[0], "--seed", "4")
    other = _files(tmp_path / "other")
    assert other.keys() == first.keys() and all(other[n] != first[n] for n in first)


def test_rush_days_have_more_tickets(oizumi_run: tuple[Path, str], tmp_path: Path) -> None:
    out, _ = oizumi_run
    stdout = _write(tmp_path / "rush", "--config", OIZUMI, "--days", "4", "--start", OIZUMI_DAYS[0], "--seed", "3",
                    "--rush")  # fmt: skip
    normal, rush = _files(out), _files(tmp_path / "rush")
    assert rush.keys() == normal.keys()
    for name in normal:
        assert _tickets(rush[name]) > 1.2 * _tickets(normal[name]), name
    assert "4 rush days" in stdout


def test_the_summary_names_the_profiles_and_the_board(oizumi_run: tuple[Path, str]) -> None:
    out, stdout = oizumi_run
    lines = stdout.splitlines()
    assert len(lines) == 5
    for line, name in zip(lines, _files(out), strict=False):
        assert line.startswith(f"{out / name}: ") and f"{_tickets(_files(out)[name])} tickets" in line
    assert "4 ordinary days of oizumi (2027-03-25 to 2027-03-29), seed 3" in lines[-1]
    assert "profiles v1" in lines[-1] and "board estimates by CapacityEstimator" in lines[-1]


class _NoWaitBoard:
    def __init__(self, config: object) -> None:
        pass

    def estimate(
        self, state: OfficeState, service: str, ahead: int, now: datetime, ticket: str | None = None
    ) -> WaitRange:
        return WaitRange.of_minutes(0, 0)


def test_another_board_can_be_run_and_is_named(tmp_path: Path) -> None:
    """On a rush day residents walk away on the capacity board; on a board saying 0 min none do."""
    argv = ("--config", OIZUMI, "--days", "1", "--start", OIZUMI_DAYS[0], "--rush")
    _write(tmp_path / "capacity", *argv)
    stdout = io.StringIO()
    assert sim_cli.run(_args(*argv, "--out", str(tmp_path / "no-wait")), stdout, make_estimator=_NoWaitBoard) == 0
    assert "board estimates by _NoWaitBoard" in stdout.getvalue() and "(0 walked away" in stdout.getvalue()
    name = f"oizumi-{OIZUMI_DAYS[0]}.jsonl"
    assert _tickets(_files(tmp_path / "no-wait")[name]) > 1.2 * _tickets(_files(tmp_path / "capacity")[name])


def test_the_default_start_is_the_next_monday() -> None:
    assert sim_cli.next_monday(date(2027, 6, 16)) == date(2027, 6, 21)  # Wednesday
    assert sim_cli.next_monday(date(2027, 6, 20)) == date(2027, 6, 21)  # Sunday
    assert sim_cli.next_monday(date(2027, 6, 21)) == date(2027, 6, 28)  # a Monday: the next one
    opts = sim_cli.parse_options(_args("--config", NERIMA, "--days", "2", "--out", "x"), today=date(2027, 6, 16))
    assert opts.days == (date(2027, 6, 21), date(2027, 6, 22))


# -- bad arguments ----------------------------------------------------------------------------------
OUT = ["--out", "days"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--days", "2", *OUT], "--config is required"),
        (["--config", "nowhere.toml", "--days", "2", *OUT], "--config: no such file: nowhere.toml"),
        (["--config", NERIMA, *OUT], "--days is required"),
        (["--config", NERIMA, "--days", "0", *OUT], "--days must be a whole number from 1 to 3660 (got '0')"),
        (["--config", NERIMA, "--days", "-3", *OUT], "--days must be a whole number from 1"),
        (["--config", NERIMA, "--days", "two", *OUT], "--days must be a whole number from 1 to 3660 (got 'two')"),
        (["--config", NERIMA, "--days", "2", "--start", "2027-02-30", *OUT], "--start must be a date YYYY-MM-DD"),
        (["--config", NERIMA, "--days", "2", "--seed", "x", *OUT], "--seed must be a whole number"),
        (["--config", NERIMA, "--days", "2", "--out", "FILE"], "--out: FILE is a file, not a directory"),
        (["--config", NERIMA, "--days", "2"], "--out is required"),
    ],
)
def test_a_bad_argument_is_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "FILE").write_text("mine")
    code, out, err = run_cli(capsys, "sim", *argv)
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("counterfloor sim: ") and message in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["FILE"]  # nothing written
    assert (tmp_path / "FILE").read_text() == "mine"


def test_a_directory_with_files_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "days"
    out.mkdir()
    (out / "nerima-2027-06-18.jsonl").write_text("an earlier run")
    code, stdout, err = run_cli(capsys, "sim", "--config", NERIMA, "--days", "2", "--start", "2027-06-18",
                                "--out", str(out))  # fmt: skip
    assert code == 2 and stdout == ""
    assert len(err.splitlines()) == 1
    assert "it already holds nerima-2027-06-18.jsonl" in err and "refusing to overwrite files of the same name" in err
    assert _files(out) == {"nerima-2027-06-18.jsonl": b"an earlier run"}
    (out / "nerima-2027-06-18.jsonl").rename(out / "notes.txt")  # any file: a new or empty directory only
    code, _, err = run_cli(capsys, "sim", "--config", NERIMA, "--days", "2", "--start", "2027-06-18",
                           "--out", str(out))  # fmt: skip
    assert code == 2 and "it holds notes.txt" in err
    assert list(_files(out)) == ["notes.txt"]

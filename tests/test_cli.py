"""The floor manager's command line, run in-process against real journal files."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, ROOT
from tests.conftest import run_cli as run

TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$")


def digest(path: Path) -> str:
    """The journal's content as its exported events plus the raw file bytes' hash."""
    h = hashlib.sha256()
    for suffix in ("", "-wal"):
        p = Path(str(path) + suffix)
        if p.exists():
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(params=["nerima", "oizumi"])
def journal(request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    path = tmp_path / f"{request.param}.db"
    code, out, _ = run(
        capsys, "office", "init", "--config", str(EXAMPLES / f"{request.param}.toml"), "--journal", str(path)
    )
    assert code == 0 and "created" in out
    return path


def test_a_morning_at_the_counter(journal: Path, capsys: pytest.CaptureFixture[str]) -> None:
    j = ("--journal", str(journal))
    assert run(capsys, "office", "issue", *j, "--service", "move", "--offline", "--at", "2027-03-15T08:40")[0] == 0
    code, out, _ = run(capsys, "office", "issue", *j, "--service", "move", "--offline", "--at", "2027-03-15T08:41")
    assert code == 0
    assert out.startswith("A-002") and "position 2 (1 ahead)" in out
    assert (
        run(capsys, "office", "issue", *j, "--service", "certificate", "--offline", "--at", "2027-03-15T08:42")[0] == 0
    )
    assert run(capsys, "office", "open", *j, "--counter", "1", "--offline", "--at", "2027-03-15T08:45")[0] == 0
    code, out, _ = run(capsys, "office", "call", *j, "--counter", "1", "--offline", "--at", "2027-03-15T08:46")
    assert (code, out) == (0, "A-001 called to counter 1\n")
    code, out, _ = run(capsys, "office", "call", *j, "--counter", "1", "--offline", "--at", "2027-03-15T09:05")
    assert code == 0 and "A-001 served at counter 1" in out and "A-002 called to counter 1" in out

    code, out, _ = run(capsys, "office", "show", *j, "--json")
    shown = json.loads(out)
    assert shown["tickets"] == {"A-001": "served", "A-002": "called", "C-001": "waiting"}
    assert shown["counters"]["1"]["serving"] == "A-002"
    code, out, _ = run(capsys, "office", "show", *j)
    assert code == 0 and "C-001" in out and "today: 3 tickets" in out


def test_export_is_the_documented_event_log(journal: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    j = ("--journal", str(journal))
    run(capsys, "office", "issue", *j, "--service", "move", "--offline", "--at", "2027-03-15T09:00+09:00")
    run(capsys, "office", "open", *j, "--counter", "1", "--offline", "--at", "2027-03-15T09:01+09:00")
    run(capsys, "office", "call", *j, "--counter", "1", "--offline", "--at", "2027-03-15T09:02+09:00")
    run(capsys, "office", "served", *j, "--counter", "1", "--offline", "--at", "2027-03-15T09:20+09:00")
    run(capsys, "office", "issue", *j, "--service", "move", "--offline", "--at", "2027-03-16T09:00+09:00")
    out_file = tmp_path / "day.jsonl"
    code, out, _ = run(capsys, "office", "export", *j, "--date", "2027-03-15", "--out", str(out_file))
    assert code == 0 and out == f"5 events written to {out_file}\n"
    records = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert [r["type"] for r in records] == ["schedule", "ticket_issued", "counter_opened", "called", "served"]
    assert [r["seq"] for r in records] == [1, 2, 3, 4, 5]
    office = journal.stem
    for r in records:
        assert r["v"] == 1 and r["office"] == office and TS_RE.match(r["ts"]), r
    issued = records[1]
    assert "token" not in issued and re.fullmatch(r"[0-9a-f]{64}", issued["token_hash"])
    assert records[0]["closes"] == "19:00" and records[0]["counters"][0]["counter"] == "1"

    code, out, _ = run(capsys, "office", "export", *j, "--from", "2027-03-16", "--to", "2027-03-16")
    lines = [json.loads(line) for line in out.splitlines()]
    assert [r["seq"] for r in lines] == [6, 7] and lines[1]["ticket"] == "A-001"  # numbering restarted
    code, out, _ = run(capsys, "office", "export", *j)
    assert len(out.splitlines()) == 7


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["office", "call", "--counter", "99"], 1, "unknown counter '99'"),
        (
            ["office", "issue", "--service", "nope", "--offline", "--at", "2027-03-15T10:00"],
            1,
            "unknown service 'nope'",
        ),
        (["office", "recall", "--counter", "1", "--offline", "--at", "2027-03-15T10:00"], 1, "serving nobody"),
        (["office", "hold", "--ticket", "Z-001", "--offline", "--at", "2027-03-15T10:00"], 1, "no ticket 'Z-001'"),
        (["office", "issue", "--service", "move", "--offline", "--at", "2027-03-21T10:00"], 1, "closed_today"),
        (["office", "issue", "--service", "move", "--offline", "--at", "2027-03-15T21:00"], 1, "not_offered_now"),
        (["office", "export", "--from", "2027-03-16", "--to", "2027-03-10"], 2, "--from 2027-03-16 is after"),
        (["office", "export", "--date", "2027-03-16", "--to", "2027-03-10"], 2, "either --date or --from/--to"),
        (["office", "issue", "--service", "move", "--at", "noon"], 2, "not an ISO 8601 time"),
        (["office", "export", "--date", "16/03/2027"], 2, "not a date YYYY-MM-DD"),
        # An empty --services once opened the counter with the config's services.
        (
            ["office", "open", "--counter", "1", "--services", "", "--offline", "--at", "2027-03-15T10:00"],
            2,
            "'services' must be",
        ),
        # The year 1 in +14:00 is the year 0 in Tokyo: once an OverflowError traceback.
        (["office", "issue", "--service", "move", "--at", "0001-01-01T00:00+14:00"], 2, "the year must be 2-9998"),
    ],
)
def test_bad_commands_say_why_and_change_nothing(
    journal: Path, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, message: str
) -> None:
    j = ["--journal", str(journal)]
    run(capsys, "office", "issue", *j, "--service", "move", "--offline", "--at", "2027-03-15T09:00")
    before = digest(journal)
    got, out, err = run(capsys, *argv, *j)
    assert got == code
    assert out == ""
    assert message in err
    if code == 1:
        assert err.count("\n") == 1, err  # one clear line
    assert digest(journal) == before


def test_init_refuses_an_existing_or_foreign_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(EXAMPLES / "nerima.toml")
    foreign = tmp_path / "notes.txt"
    foreign.write_text("not a journal\n" * 20)
    code, _, err = run(capsys, "office", "show", "--journal", str(foreign))
    assert code == 1 and "not a counterfloor journal" in err
    code, _, err = run(capsys, "office", "init", "--config", cfg, "--journal", str(foreign))
    assert code == 1 and "exists already" in err
    assert foreign.read_text() == "not a journal\n" * 20
    code, _, err = run(capsys, "office", "call", "--counter", "1", "--journal", str(tmp_path / "missing.db"))
    assert code == 1 and "no journal at" in err and not (tmp_path / "missing.db").exists()


def test_bad_config_names_file_and_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text((EXAMPLES / "oizumi.toml").read_text().replace('prefix = "B"', 'prefix = "A"'))
    code, _, err = run(capsys, "office", "init", "--config", str(bad), "--journal", str(tmp_path / "j.db"))
    assert code == 2
    assert str(bad) in err and "services[1].prefix" in err and "used by another service" in err
    assert not (tmp_path / "j.db").exists()


def test_reconfigure_keeps_history_and_refuses_another_office(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "j.db"
    j = ("--journal", str(path))
    run(capsys, "office", "init", "--config", str(EXAMPLES / "oizumi.toml"), *j)
    run(capsys, "office", "issue", *j, "--service", "move", "--offline", "--at", "2027-03-15T09:00")
    changed = tmp_path / "oizumi-changed.toml"
    changed.write_text((EXAMPLES / "oizumi.toml").read_text().replace("typical_minutes = 20", "typical_minutes = 25"))
    assert run(capsys, "office", "reconfigure", "--config", str(changed), *j)[0] == 0
    code, _, err = run(capsys, "office", "reconfigure", "--config", str(EXAMPLES / "nerima.toml"), *j)
    assert code == 1 and "belongs to office 'oizumi'" in err
    code, out, _ = run(capsys, "office", "issue", *j, "--service", "move", "--offline", "--at", "2027-03-15T09:05")
    assert code == 0 and out.startswith("A-002")


def test_console_script_is_installed() -> None:
    """The README's commands go through the `counterfloor` entry point, not this module."""
    exe = Path(sys.executable).parent / "counterfloor"
    result = subprocess.run([str(exe), "office", "--help"], capture_output=True, text=True, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stderr
    for action in (
        "init",
        "issue",
        "call",
        "recall",
        "no-show",
        "transfer",
        "open",
        "pause",
        "close",
        "show",
        "export",
    ):
        assert action in result.stdout


def test_export_never_writes_over_a_journal(journal: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    j = ["--journal", str(journal)]
    run(capsys, "office", "issue", *j, "--service", "move", "--offline", "--at", "2027-03-15T09:00")
    before = digest(journal)
    other = tmp_path / "other.db"
    run(capsys, "office", "init", "--config", str(EXAMPLES / "oizumi.toml"), "--journal", str(other))
    other_bytes = other.read_bytes()
    for target, message in [
        (journal, f"--out: {journal} is an SQLite database (a journal?); refusing to overwrite it"),
        (other, "is an SQLite database"),
        (Path(f"{journal}-wal"), f"belongs to the journal {journal}"),
    ]:
        code, out, err = run(capsys, "office", "export", *j, "--out", str(target))
        assert (code, out) == (2, "") and err.count("\n") == 1 and message in err, err
    assert digest(journal) == before and other.read_bytes() == other_bytes


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("{tmp}", "--out: {tmp} is a directory, not a file"),
        ("{tmp}/no/such/dir/e.jsonl", "--out: no such directory: {tmp}/no/such/dir"),
        ("", "--out: . is a directory, not a file"),
    ],
)
def test_export_to_a_bad_path_is_one_line_and_leaves_nothing(
    journal: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path, out: str, message: str
) -> None:
    files = set(tmp_path.parent.iterdir()), set(tmp_path.iterdir())
    code, stdout, err = run(capsys, "office", "export", "--journal", str(journal), "--out", out.format(tmp=tmp_path))
    assert (code, stdout) == (2, "")
    assert err == f"counterfloor: error: {message.format(tmp=tmp_path)}\n"
    assert (set(tmp_path.parent.iterdir()), set(tmp_path.iterdir())) == files  # no .partial left


def test_init_in_a_missing_directory_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "nope" / "j.db"
    code, out, err = run(capsys, "office", "init", "--config", str(EXAMPLES / "nerima.toml"), "--journal", str(target))
    assert (code, out) == (1, "")
    assert err == f"counterfloor: error: cannot create {target}: no such directory {target.parent}\n"
    assert list(tmp_path.iterdir()) == []


def test_an_empty_journal_variable_is_no_journal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COUNTERFLOOR_JOURNAL", "")
    code, out, err = run(capsys, "office", "show")
    assert (code, out) == (2, "")
    assert "the following arguments are required: --journal" in err and "Traceback" not in err


def test_a_file_name_too_long_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Path.exists() raises ENAMETOOLONG: once an OSError traceback from every command taking a path.
    long = tmp_path / ("x" * 300)
    code, out, err = run(capsys, "office", "init", "--config", str(EXAMPLES / "nerima.toml"), "--journal", str(long))
    assert (code, out) == (1, "")
    assert err == f"counterfloor: error: {long}: File name too long\n"
    assert list(tmp_path.iterdir()) == []

"""Checks on the files the commands write (--out, --png): a mistyped path is one clear line, and
no command ever writes its output over a journal (it would destroy the office's tickets)."""

from __future__ import annotations

from pathlib import Path

from gateway.journal import is_sqlite_file

# Files SQLite and the journal keep beside a journal: overwriting one damages the journal too.
_JOURNAL_SIDECARS = ("-wal", "-shm", "-journal", ".lock")


def output_problem(path: Path) -> str | None:
    """Why `path` cannot be written as a command's output file, or None if it can."""
    if path.name == "" or path.is_dir():
        return f"{path} is a directory, not a file"
    if not path.parent.is_dir():
        return f"no such directory: {path.parent}"
    if is_sqlite_file(path):
        return f"{path} is an SQLite database (a journal?); refusing to overwrite it"
    for suffix in _JOURNAL_SIDECARS:
        base = path.with_name(path.name.removesuffix(suffix))
        if path.name.endswith(suffix) and is_sqlite_file(base):
            return f"{path} belongs to the journal {base}; refusing to overwrite it"
    return None

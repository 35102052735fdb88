"""`python -m central.store_copy FROM TO`: copy every office's events and metadata from one event
store into another (central.store.copy_store) — a one-file SQLite store into a folder of a file
per office, or either into PostgreSQL. Stop central first (or run it again once stopped: a second
run stores only what the first missed). The source is only read; a target that already holds a
different record under one of the source's seqs stops the copy, naming it. Exit status 0 when
every office's seqs in the target are the source's, 1 otherwise, 2 for a bad argument.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TextIO

from central.store import StoreError, StoreURLError, copy_store, open_store


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m central.store_copy",
        description="Copy every office's events and metadata from one central event store into another.",
    )
    parser.add_argument("source", metavar="FROM", help="the store to read, e.g. central.db")
    parser.add_argument("target", metavar="TO", help="the store to fill, e.g. central/ (a SQLite file per office)")
    args = parser.parse_args(argv)
    try:
        with open_store(args.source) as source, open_store(args.target) as target:
            copied = copy_store(source, target)
    except StoreURLError as exc:
        sys.stderr.write(f"store_copy: {exc}\n")
        return 2
    except StoreError as exc:
        sys.stderr.write(f"store_copy: {exc}\n")
        return 1
    for c in copied:
        out.write(
            f"{c.office}: {c.read} record(s) read, {c.stored} newly stored; seqs up to {c.last_seq} "
            f"(contiguous to {c.contiguous_seq})\n"
        )
    out.write(f"{len(copied)} office(s) copied from {source.url} to {target.url}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

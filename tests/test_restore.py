"""A replacement gateway's journal from central's copy of today (gateway/restore.py): the same
numbers, tickets and hashes; a reprint of a restored ticket gets a new token, journaled; a copy
that is not whole is refused and nothing is written."""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from counterfloor.simulate import DaySimulation
from gateway.journal import TicketJournal, new_token
from gateway.mqtt_link import MARK_KEY, SESSION_KEY
from gateway.restore import RestoreError, restore_journal
from office import events as ev
from office.config import OfficeConfig
from office.model import IssueTicket, OfficeError, Reprint, TicketReady
from office.state import TicketStatus
from tests.conftest import EXAMPLES, tokyo

NOON = tokyo(2027, 6, 15, 12, 0)


def _day_until(path: Path, config: OfficeConfig, text: str, until: datetime) -> list[dict[str, Any]]:
    """A journal with a simulated morning; its events as central keeps them (public records)."""
    with TicketJournal.create(path, config, text, clock=lambda: until) as journal:
        sim = DaySimulation(config, until.date(), seed=3, office=journal.office, execute=journal.execute,
                            make_token=new_token)  # fmt: skip
        sim.run_until(until)
        return [ev.public_record(e, config.id) for e in journal.reader().events()]


def _text() -> str:
    return (EXAMPLES / "oizumi.toml").read_text(encoding="utf-8")


def test_a_restored_journal_carries_on_with_the_same_numbers_and_hashes(oizumi: OfficeConfig, tmp_path: Path) -> None:
    records = _day_until(tmp_path / "old.db", oizumi, _text(), NOON)
    with TicketJournal.open(tmp_path / "old.db") as old:
        before = old.office.state
    restored = restore_journal(tmp_path / "new.db", oizumi, _text(), records, session=41)
    assert (restored.first_seq, restored.last_seq) == (1, before.last_seq) and restored.tickets == len(before.tickets)
    with TicketJournal.open(tmp_path / "new.db", clock=lambda: NOON) as journal:
        state = journal.office.state
        assert state.last_seq == before.last_seq and state.day == before.day
        assert {t.id: (t.number, t.token_hash, t.status, t.counter) for t in state.tickets.values()} == {
            t.id: (t.number, t.token_hash, t.status, t.counter) for t in before.tickets.values()
        }
        assert all(t.token == "" for t in state.tickets.values())  # central never had them
        assert state.queues == before.queues and state.last_number == before.last_number
        assert journal.get_meta(SESSION_KEY) == "41" and journal.get_meta(MARK_KEY) == str(before.last_seq)
        # The next ticket continues the numbering.
        decision = journal.execute(IssueTicket("move", new_token()), NOON)
        issued = next(e for e in decision.events if isinstance(e, ev.TicketIssued))
        assert issued.seq == before.last_seq + 1 and issued.number == before.last_number["move"] + 1
        # A waiting restored ticket printed again: a new token, stored before its QR code goes out.
        waiting = next(t for t in state.tickets.values() if t.status is TicketStatus.WAITING and not t.token)
        old_hash = waiting.token_hash
        with pytest.raises(OfficeError, match="restored without its token"):
            journal.execute(Reprint(waiting.id), NOON)
        token = new_token()
        reprint = journal.execute(Reprint(waiting.id, token), NOON)
        (replaced,) = reprint.events
        (ready,) = [e for e in reprint.effects if isinstance(e, TicketReady)]
        assert isinstance(replaced, ev.TokenReplaced) and ready.token == token
        assert replaced.token_hash == hashlib.sha256(token.encode()).hexdigest() != old_hash
        assert "token" not in ev.public_record(replaced, "oizumi")  # the token never leaves the gateway
        # A ticket with its token reprints with it, storing nothing.
        assert journal.execute(Reprint(issued.ticket, new_token()), NOON).events == []
        journal.snapshot()  # the restored hashes survive a snapshot (no token to derive them from)
    with TicketJournal.open(tmp_path / "new.db", clock=lambda: NOON) as journal:
        again = journal.office.state.tickets
        assert again[waiting.id].token == token and again[waiting.id].token_hash == replaced.token_hash
        others = [t for t in again.values() if t.id not in (waiting.id, issued.ticket)]
        assert all(t.token_hash == before.tickets[t.id].token_hash for t in others)


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda r: [x for x in r if x["seq"] != 40], "misses seq 40–40"),
        (lambda r: r[1:], "does not start with the day's schedule"),
        (lambda r: [], "central has no events of oizumi"),
        (lambda r: [{**r[0], "office": "nerima"}, *r[1:]], "of office 'nerima'"),
        (lambda r: [*r[:5], {**r[5], "v": 2}, *r[6:]], "event log version 2"),
        (lambda r: [*r[:5], {**r[5], "surprise": 1}, *r[6:]], "record 6"),
    ],
)
def test_a_copy_that_is_not_whole_is_refused_and_nothing_is_written(
    oizumi: OfficeConfig, tmp_path: Path, damage: Any, why: str
) -> None:
    records = _day_until(tmp_path / "old.db", oizumi, _text(), NOON)
    with pytest.raises(RestoreError, match=why):
        restore_journal(tmp_path / "new.db", oizumi, _text(), damage(records), session=1)
    assert not (tmp_path / "new.db").exists()


def test_an_existing_journal_is_never_written_over(oizumi: OfficeConfig, tmp_path: Path) -> None:
    records = _day_until(tmp_path / "old.db", oizumi, _text(), NOON)
    kept = (tmp_path / "old.db").read_bytes()
    with pytest.raises(RestoreError, match="exists"):
        restore_journal(tmp_path / "old.db", oizumi, _text(), records, session=1)
    assert (tmp_path / "old.db").read_bytes() == kept

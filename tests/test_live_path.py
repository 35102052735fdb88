"""The journal's live path, `Office.perform`, against `decide` then `apply`.

`perform` changes the state as it decides, for the commonest commands, instead of applying the
events afterwards. For random command sequences (seeded by the Hypothesis profile) the two must
give the same decisions, the same errors and the same states, step by step.
"""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from office.config import OfficeConfig
from office.model import (
    CallNext,
    CloseCounter,
    Command,
    Decision,
    FinishService,
    Hold,
    IssueTicket,
    MarkNoShow,
    Office,
    OfficeError,
    OpenCounter,
    PauseCounter,
    Recall,
    ResumeCounter,
    Return,
    StartDay,
    Transfer,
)
from office.state import OfficeState

from .conftest import tokyo

KINDS = ("issue",) * 4 + ("call",) * 3 + ("recall", "recall", "finish", "no_show", "no_show", "open", "open")
KINDS += ("pause", "resume", "close", "transfer", "hold", "return", "start_day", "call_unknown", "issue_unknown")
# (what, which, seconds after the previous command: negative is a wall clock jumping back)
STEP = st.tuples(st.sampled_from(KINDS), st.integers(0, 5), st.integers(-60, 240))


def state_of(state: OfficeState) -> tuple[Any, ...]:
    return tuple(copy.deepcopy(getattr(state, name)) for name in OfficeState.__slots__)


def command_for(kind: str, i: int, office: Office) -> Command:
    # Two counters and the services they call, so that commands meet each other's tickets.
    counters = [c.id for c in office.config.counters[:2]]
    services = list(dict.fromkeys(s for c in office.config.counters[:2] for s in c.services))[:3]
    tickets = sorted(office.state.tickets) or ["X-000"]
    service, counter, ticket = services[i % len(services)], counters[i % len(counters)], tickets[i % len(tickets)]
    by_kind: dict[str, Command] = {
        "issue": IssueTicket(service, f"token-{i}"),
        "issue_unknown": IssueTicket("no-such-service", "t"),
        "call": CallNext(counter),
        "call_unknown": CallNext("no-such-counter"),
        "recall": Recall(counter),
        "finish": FinishService(counter),
        "no_show": MarkNoShow(counter),
        "open": OpenCounter(counter),
        "pause": PauseCounter(counter),
        "resume": ResumeCounter(counter),
        "close": CloseCounter(counter),
        "transfer": Transfer(
            services[(i + 1) % len(services)], ticket=ticket if i % 2 else None, counter=None if i % 2 else counter
        ),
        "hold": Hold(ticket),
        "return": Return(ticket),
        "start_day": StartDay(),
    }
    return by_kind[kind]


def outcome(office: Office, live: bool, command: Command, now: datetime) -> Decision | str:
    try:
        return office.perform(command, now) if live else office.execute(command, now)
    except OfficeError as err:
        return err.code


@settings(max_examples=200)
@given(steps=st.lists(STEP, min_size=1, max_size=120), start_minutes=st.integers(8 * 60, 19 * 60 + 30))
def test_perform_decides_and_applies_as_decide_then_apply(
    nerima: OfficeConfig, steps: list[tuple[str, int, int]], start_minutes: int
) -> None:
    live, reference = Office(nerima), Office(nerima)
    now = tokyo(2027, 3, 29) + timedelta(minutes=start_minutes, microseconds=1500)
    for kind, i, seconds in steps:
        now += timedelta(seconds=seconds, microseconds=i * 79_193)  # and across midnight, now and then
        command = command_for(kind, i, reference)
        expected = outcome(reference, False, command, now)
        got = outcome(live, True, command, now)
        assert got == expected, command
        assert state_of(live.state) == state_of(reference.state), command


def test_perform_changes_nothing_when_it_refuses(nerima: OfficeConfig) -> None:
    """A live handler checks everything before it changes anything."""
    office = Office(nerima)
    office.perform(OpenCounter("1"), tokyo(2027, 3, 29, 9, 0))
    office.perform(IssueTicket("move", "t1"), tokyo(2027, 3, 29, 9, 1))
    office.perform(CallNext("1"), tokyo(2027, 3, 29, 9, 2))
    for _ in range(nerima.rules.recall_limit):
        office.perform(Recall("1"), tokyo(2027, 3, 29, 9, 3))
    before = state_of(office.state)
    for command in (Recall("1"), CallNext("2"), FinishService("2"), PauseCounter("2"), IssueTicket("nope", "t")):
        try:
            office.perform(command, tokyo(2027, 3, 29, 9, 4))
        except OfficeError:
            pass
        else:
            raise AssertionError(f"{command} should have been refused")
        assert state_of(office.state) == before, command


def test_the_ticket_id_formats_agree_with_the_config(nerima: OfficeConfig, oizumi: OfficeConfig) -> None:
    for config in (nerima, oizumi):
        office = Office(config)
        for s in config.services:
            for number in (s.first_number, s.first_number + 1, s.last_number):
                assert office.ticket_ids[s.id](number) == s.ticket_id(number)


def test_a_requeued_ticket_called_again_starts_with_no_recalls(nerima: OfficeConfig) -> None:
    """A path the random sequences seldom take: called, recalled, no-show (requeued), called."""
    live, reference = Office(nerima), Office(nerima)
    script: list[Command] = [OpenCounter("1"), IssueTicket("move", "t1"), CallNext("1"), Recall("1"), MarkNoShow("1")]
    script += [CallNext("1"), Recall("1"), FinishService("1"), CallNext("1"), CloseCounter("1")]
    for minute, command in enumerate(script):
        now = tokyo(2027, 3, 29, 9, minute)
        assert outcome(live, True, command, now) == outcome(reference, False, command, now), command
        assert state_of(live.state) == state_of(reference.state), command
    assert live.state.tickets["A-001"].recalls == 1

"""The demo's simulated people at a gateway's control socket (counterfloor/demo_staff.py)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from counterfloor.demo_staff import FloorStaff, request_for
from gateway.control_server import READ_DEADLINE_S
from office import events as ev
from office import model as m
from tests.floor_support import floor_without_devices, held_gateway


def test_a_connection_the_gateway_closed_as_idle_is_opened_again_and_nothing_is_done_twice(tmp_path: Path) -> None:
    """The gateway closes a connection that sent nothing for READ_DEADLINE_S (saying why first): a
    quiet spell of the simulated day must not end the demo, and the request goes through once."""
    config, text = floor_without_devices(tmp_path)
    gw, clock = held_gateway(tmp_path, config, text)
    gw.start()
    staff = FloorStaff(gw)
    try:
        now = gw.wall()
        assert staff.execute(m.OpenCounter("1"), now).events[-1].TYPE == "counter_opened"
        clock.t += READ_DEADLINE_S + 1  # a quiet spell: the gateway drops the connection
        gw.step()
        decision = staff.execute(m.IssueTicket("move", "unused"), now + timedelta(seconds=6))
        issued = [e for e in decision.events if isinstance(e, ev.TicketIssued)]
        assert [e.ticket for e in issued] == ["A-001"]
        assert isinstance(decision.effects[0], m.TicketReady) and decision.effects[0].token == issued[0].token
        journal = gw.journal
        assert journal is not None
        assert sum(t.service == "move" for t in journal.office.state.tickets.values()) == 1
    finally:
        staff.close()
        gw.close()


def test_every_command_the_simulation_gives_has_its_request() -> None:
    commands = [
        m.IssueTicket("move", "t"),
        m.CallNext("1"),
        m.FinishService("1"),
        m.Recall("1"),
        m.MarkNoShow("1"),
        m.PauseCounter("1"),
        m.ResumeCounter("1"),
        m.CloseCounter("1"),
        m.OpenCounter("1", ("move",)),
        m.Transfer("seal", counter="1"),
    ]
    cmds = [request_for(c)["cmd"] for c in commands]
    assert cmds == ["issue", "call", "served", "recall", "no-show", "pause", "resume", "close", "open", "transfer"]
    assert request_for(m.OpenCounter("1", ("move",)))["services"] == ["move"]
    assert request_for(m.Transfer("seal", counter="1")) == {"cmd": "transfer", "to": "seal", "counter": "1"}

"""The web-under-load benchmark in small (bench/web_load.py): a real broker, `counterfloor central`
with its pages in a process of its own, 50 residents' ticket streams open at once and 20 calls
published as a gateway publishes them — every page stays open and every called ticket's page
says so. Correctness only: the timings are the benchmark's (docs/benchmarks.md, "Web under load").

And the hub's part of what the benchmark led to: a ticket page is woken only by the views in
which its own ticket changed."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

from bench.web_load import Plan, measure, results
from central.web.hub import ViewHub
from central.web.view import OfficeView, TicketView
from tests.conftest import TOKYO


def test_every_page_open_gets_its_call(tmp_path: Path) -> None:
    plan = Plan(clients=50, rates=(0.0,), calls=(20,), baseline_calls=2, browsers=0)
    log: list[str] = []
    out = measure(plan, tmp_path, log)
    assert out.issued == plan.tickets and out.missed == [] and out.errors == []
    assert out.held == 50  # every stream still open after the calls
    base, burst = out.phases
    assert len(base.latencies) == 2 and len(burst.latencies) == 20
    assert all(latency > 0 for latency in base.latencies + burst.latencies)
    assert burst.fragments >= 20  # every called page read at least its call
    rows = results(out, log)
    held = next(r for r in rows if r.name.startswith("Live ticket pages held"))
    assert held.met is True and "20/20 calls seen" in held.measured


def _view(office: str, tickets: dict[str, TicketView], day: str = "2027-03-15") -> OfficeView:
    return OfficeView(office, 0, day, datetime(2027, 3, 15, 9, 0, tzinfo=TOKYO), 1, (), (), tickets)


def test_a_ticket_page_is_woken_only_when_its_ticket_changes() -> None:
    hub = ViewHub()
    waiting = TicketView("A-001", "move", "waiting", 3, None, None, None)
    other = TicketView("A-002", "move", "waiting", 4, None, None, None)

    async def scenario() -> tuple[list[int], list[int], list[int]]:
        mine = hub.subscribe("nerima", "hash-1")
        office = hub.subscribe("nerima")
        everyone = hub.subscribe(None)
        hub.publish(_view("nerima", {"hash-1": waiting, "hash-2": other}))  # 1: the first view
        hub.publish(
            _view("nerima", {"hash-1": waiting, "hash-2": TicketView("A-002", "move", "waiting", 3, None, None, None)})
        )
        hub.publish(_view("oizumi", {}))  # 3: another office
        called = TicketView("A-001", "move", "called", None, None, None, "5")
        hub.publish(_view("nerima", {"hash-1": called, "hash-2": other}))  # 4: mine is called
        hub.publish(_view("nerima", {"hash-1": called, "hash-2": other}, day="2027-03-16"))  # 5: a new day
        await asyncio.sleep(0)  # the offers run in this loop, handed over in one call per publish
        got = []
        for sub in (mine, office, everyone):
            versions = []
            while not sub.queue.empty():
                versions.append((await sub.next())[1])
            got.append(versions)
            sub.close()
        return got[0], got[1], got[2]

    mine, office, everyone = asyncio.run(scenario())
    assert mine == [1, 4, 5]  # not 2 (only the other ticket moved), not 3 (another office)
    assert office == [1, 2, 4, 5]
    assert everyone == [1, 2, 3, 4, 5]
    assert hub.subscribers == 0

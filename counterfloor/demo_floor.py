"""The demo's office as a gateway on the simulation's clock, publishing to an MQTT broker.

Owns what the demo runs besides the simulation: the broker (amqtt inside this process on a free
loopback port, unless `--broker URL` names one), and a `gateway.service.Gateway` holding the
day's journal whose wall clock is the simulated one, so what it publishes (events, snapshot,
mode) is what `counterfloor office watch --broker URL` shows of a real floor. The simulated
residents and staff still write through the journal the gateway holds; the floor's devices
(`sim://` boards) are left out of this gateway until the demo drives them (they are not stepped).
"""

from __future__ import annotations

import io
import sqlite3
import time as _time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path

from counterfloor.embedded_broker import EmbeddedBroker, EmbeddedBrokerError
from counterfloor.simulate import record_day
from gateway.journal import JournalError, TicketJournal
from gateway.service import Gateway, GatewayError
from office.calendar import plan_for
from office.config import CalloutSettings, OfficeConfig
from office.waittime import split_days, train
from office.waittime.records import Event as RecordEvent
from office.waittime.records import from_events

FLUSH_TIMEOUT_S = 15.0  # at the day's end: how long the demo waits for the broker to take the rest
HISTORY_DAYS = 20  # simulated open days before the demo's day, which its wait estimate learns from


class FloorError(Exception):
    """The broker or the journal could not be set up; the message is the one line the user sees."""


class SimulatedWall:
    """The gateway's wall clock: the simulation's moment once there is one, `start` before."""

    def __init__(self, start: datetime) -> None:
        self.start = start
        self.read: Callable[[], datetime] | None = None

    def __call__(self) -> datetime:
        return self.read() if self.read is not None else self.start


@dataclass
class DemoFloor:
    gateway: Gateway
    journal: TicketJournal
    broker_url: str
    embedded: bool
    wall: SimulatedWall

    def tick(self) -> None:
        """A turn of the gateway's broker link: what is due goes out, commands come in."""
        if self.gateway.mqtt is not None:
            self.gateway.mqtt.step()

    def flush(self, timeout: float = FLUSH_TIMEOUT_S) -> bool:
        """Until the broker has every event of the day (True) or `timeout` passed (False)."""
        return self.gateway.mqtt is not None and self.gateway.mqtt.flush(timeout)

    @property
    def problem(self) -> str | None:
        """Why the broker link last failed, if it did."""
        return self.gateway.mqtt.last_error if self.gateway.mqtt is not None else None

    @property
    def published(self) -> int:
        """The last seq the broker acknowledged."""
        return self.gateway.mqtt.mark if self.gateway.mqtt is not None else 0


@dataclass(frozen=True, slots=True)
class History:
    days: int
    seconds: float


def learn_history(floor: DemoFloor, config: OfficeConfig, day: date, seed: int, rush: bool) -> History:
    """The office's past, for its wait estimate: the demo's journal is new, so the HISTORY_DAYS
    open days before `day` are simulated (the same seed, the same kind of day) and learned from
    as a gateway learns from its journal (gateway.estimates), then put under the day's office
    model. Twice: first with the capacity estimate on the board (as `counterfloor sim` makes
    days), then again with the estimate learned from those on the board, and learned from anew —
    the past of an office that runs the learned estimate, whose residents walk away on its
    figures, as the demo's day's do (docs/waittime.md: learned from days under another board,
    the rush day's printed range held 56 % of waits, 74 % like this)."""
    started = _time.monotonic()
    past_days = open_days_before(config, day, HISTORY_DAYS)
    predictor = None
    days: list[list[RecordEvent]] = []
    for _ in range(2):
        records: list[RecordEvent] = []
        for past in past_days:
            recorded = record_day(config, past, seed=seed, rush=rush, learned=predictor)
            records += from_events(recorded.events, config.id)
        days = split_days(records)
        if floor.gateway.estimator is None or not days:
            break
        predictor = train("best", days)
    if floor.gateway.estimator is not None and predictor is not None:
        floor.gateway.estimator.use(predictor)
    return History(len(days), _time.monotonic() - started)


def open_days_before(config: OfficeConfig, day: date, count: int) -> list[date]:
    """The `count` days before `day` on which the office opened (fewer if a year holds fewer), oldest first."""
    found: list[date] = []
    past = day
    for _ in range(366):
        if len(found) == count or past == date.min:
            break
        past -= timedelta(days=1)
        if plan_for(config, past).is_open:
            found.append(past)
    return found[::-1]


def without_hardware(config: OfficeConfig) -> OfficeConfig:
    """The office as the demo's gateway runs it: no bus devices, printers, signs or call-out."""
    return replace(config, devices=(), printers=(), signs=(), callout=CalloutSettings())


@contextmanager
def demo_floor(
    config: OfficeConfig, config_text: str, journal: Path, workdir: Path, start: datetime, broker: str | None
) -> Iterator[DemoFloor]:
    """The broker (embedded when `broker` is None) and the gateway on a new journal at `journal`
    (which must not exist), its socket in `workdir`; all closed again on the way out, the
    gateway first so its death reaches the broker."""
    if journal.exists() or journal.is_symlink():
        raise FloorError(f"--journal: {journal} already exists; the demo writes a new journal")
    if not journal.parent.is_dir():
        raise FloorError(f"--journal: cannot create {journal}: no such directory {journal.parent}")
    with ExitStack() as stack:
        embedded = broker is None
        if broker is None:
            server = EmbeddedBroker()
            try:
                server.start()
            except EmbeddedBrokerError as exc:
                raise FloorError(f"the embedded MQTT broker did not start: {exc}") from None
            stack.callback(server.stop)
            broker = f"mqtt://127.0.0.1:{server.port}"
        wall = SimulatedWall(start)
        gw = Gateway(
            without_hardware(config),
            config_text,
            journal,
            workdir / "gateway.sock",
            io.StringIO(),
            wall=wall,
            broker_url=broker,
        )
        try:
            gw.start()
        except GatewayError as exc:  # a --broker URL that cannot work: named
            raise FloorError(str(exc)) from None
        except JournalError as exc:
            raise FloorError(f"--journal: {exc}") from None
        except (OSError, sqlite3.Error) as exc:
            raise FloorError(f"--journal: cannot create {journal}: {exc}") from None
        stack.callback(gw.close)
        assert gw.journal is not None
        yield DemoFloor(gw, gw.journal, broker, embedded, wall)

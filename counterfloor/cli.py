"""The `counterfloor` command line: the floor manager's office commands, export, and the demo.

A thin shell: parse arguments, open the journal, run one command, print one readable result.
Errors are one clear line on stderr and a non-zero exit (2 for bad usage, 1 for refusals).
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any, NoReturn, TextIO

from counterfloor.outputs import output_problem
from gateway import control, salvage
from gateway.config_change import change_problem as config_change_problem
from gateway.control import queue_json, queue_table
from gateway.journal import (
    JournalCorrupt,
    JournalError,
    JournalReader,
    NotAJournal,
    RequestDone,
    TicketJournal,
    utc_now,
)
from gateway.metrics import add_metrics_options
from gateway.service import GatewayError, journal_path, run_gateway, socket_path
from office import events as ev
from office import model as m
from office.calendar import moment_problem
from office.config import ConfigError, OfficeConfig, load_config

__all__ = ["main", "queue_json", "queue_table"]

EXIT_REFUSED = 1
EXIT_USAGE = 2


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_REFUSED) -> None:
        self.code = code
        super().__init__(message)


# -- argument types ---------------------------------------------------------------------------
def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD: {text!r}") from None


def _iso_moment(text: str) -> datetime:
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time like 2027-03-15T09:30+09:00: {text!r}") from None
    if problem := moment_problem(at):
        raise argparse.ArgumentTypeError(f"{problem}: {text!r}")
    return at


def _journal_arg(p: argparse.ArgumentParser) -> None:
    env = os.environ.get("COUNTERFLOOR_JOURNAL")
    p.add_argument(
        "--journal",
        type=Path,
        default=Path(env) if env else None,
        required=not env,  # an empty $COUNTERFLOOR_JOURNAL is no journal either
        help="the office's journal file (default: $COUNTERFLOOR_JOURNAL)",
    )


def _at_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--at",
        type=_iso_moment,
        help="the command's time (ISO 8601; without an offset, the office's local time): within two minutes of "
        "the clock, on today's business day, unless --offline; the journal never goes back in time",
    )
    p.add_argument(
        "--offline",
        action="store_true",
        help="build a journal offline (tests, training): --at may be any moment; the journal is opened directly, "
        "so this is refused while a gateway runs on it",
    )


# -- office commands ------------------------------------------------------------------------------
def _now(args: argparse.Namespace, config: OfficeConfig) -> datetime | None:
    at: datetime | None = args.at
    if at is not None and at.tzinfo is None:
        at = at.replace(tzinfo=config.tz)
    return at


def _load(path: Path) -> tuple[OfficeConfig, str]:
    config = load_config(path)
    return config, path.read_text(encoding="utf-8")


def cmd_init(args: argparse.Namespace, out: TextIO) -> int:
    config, text = _load(args.config)
    with TicketJournal.create(args.journal, config, text):
        pass
    out.write(f"journal {args.journal} created for {config.name.en} ({config.id})\n")
    return 0


def cmd_reconfigure(args: argparse.Namespace, out: TextIO) -> int:
    """A changed config of the same office: through the running gateway, which applies it at
    once (docs/operations.md, "Changing the configuration"); without one, stored in the journal."""
    config, text = _load(args.config)  # checked here first: an error names the file and key
    request = {"cmd": "reconfigure", "config": text, "source": str(args.config), "id": control.new_request_id()}
    if len(json.dumps(request, ensure_ascii=False).encode()) >= control.MAX_LINE:
        raise CliError(f"{args.config}: too large for the control socket ({control.MAX_LINE} bytes a request)")
    reply = _ask_gateway(args, request)
    if reply is not None:
        out.write(str(reply.get("output", "")))
        return 0
    try:
        journal = TicketJournal.open(args.journal)
    except ConfigError:  # the stored config no longer reads (an older version's): the file replaces it
        TicketJournal.open(args.journal, (config, text)).close()
        out.write(f"journal {args.journal} now uses {args.config}\n")
        return 0
    with journal:
        current = journal.office.config
        if config.id == current.id and (problem := config_change_problem(current, config, journal.office.state)):
            raise CliError(f"{args.config}: {problem}")
        decision = journal.change_config(config, text, via="offline")  # another office's: refused here
    if not decision.events:
        out.write(f"journal {args.journal} uses {args.config} already\n")
    else:
        out.write(f"journal {args.journal} now uses {args.config}\n")
    return 0


def _socket_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--socket",
        type=Path,
        help="the running gateway's control socket (default: $COUNTERFLOOR_SOCKET, the journal's config "
        "gateway.socket, or <journal>.sock); without a gateway listening, the journal is opened directly",
    )


def _gateway_socket(args: argparse.Namespace) -> Path:
    given: Path | None = args.socket
    configured = None
    if given is None and not os.environ.get("COUNTERFLOOR_SOCKET"):
        try:
            with JournalReader(args.journal) as reader:
                configured = reader.config().gateway.socket
        except (JournalError, ConfigError, OSError):
            pass  # no readable journal: the direct path says what is wrong with it
    return socket_path(args.journal, configured, given)


def _ask_gateway(args: argparse.Namespace, request: dict[str, Any]) -> dict[str, Any] | None:
    """The running gateway's reply to `request`, or None when no gateway listens. A request
    with an "id" whose reply is lost (the gateway restarted, a time-out) is sent once more, and
    if the gateway is gone by then, the caller carries it out on the journal under the same id:
    a repeated id is answered with the first result, so nothing is done twice."""
    path = _gateway_socket(args)
    try:
        reply = control.ask(path, request)
    except control.GatewayAbsent:
        return None
    except (OSError, ValueError) as exc:
        if "id" not in request:
            raise CliError(f"the gateway at {path} did not answer: {exc}") from None
        try:
            reply = control.ask(path, request)
        except control.GatewayAbsent:
            return None
        except (OSError, ValueError) as again:
            raise CliError(f"the gateway at {path} did not answer, twice: {again}") from None
    if not reply.get("ok"):
        code = EXIT_USAGE if reply.get("kind") == control.KIND_USAGE else EXIT_REFUSED
        raise CliError(str(reply.get("error", "the gateway refused the request")), code)
    return reply


def _command_runner(
    to_request: Callable[[argparse.Namespace], dict[str, Any]],
) -> Callable[[argparse.Namespace, TextIO], int]:
    def run(args: argparse.Namespace, out: TextIO) -> int:
        request = {"cmd": args.action, **to_request(args), "id": control.new_request_id()}
        if args.at is not None:
            request["at"] = args.at.isoformat()
        reply = None if args.offline else _ask_gateway(args, request)
        if reply is not None:
            output, refused = str(reply.get("output", "")), reply.get("refused")
        else:
            with TicketJournal.open(args.journal) as journal:
                config = journal.office.config
                try:
                    command = control.build_command(request)
                    now = control.request_time(request, config, None if args.offline else utc_now())
                    key = control.request_key(request)
                except control.BadRequest as exc:
                    raise CliError(str(exc), EXIT_USAGE) from None
                try:
                    decision = journal.execute(
                        command, now, request=key, result=lambda d: json.dumps(control.done_reply(d, config))
                    )
                except RequestDone as done:  # carried out by the gateway before it stopped
                    first = json.loads(done.result)
                    output, refused = str(first.get("output", "")), first.get("refused")
                else:
                    output, refused = control.describe(decision, config), control.refusal(decision)
        out.write(output)
        if refused:
            raise CliError(f"refused ({refused['reason']}): {refused['message']}")
        return 0

    return run


def cmd_show(args: argparse.Namespace, out: TextIO) -> int:
    reply = _ask_gateway(args, {"cmd": "show", "json": bool(args.json)})
    if reply is not None:
        out.write(str(reply.get("output", "")))
        return 0
    # A writer's lock is not needed to look: recover the state read-only.
    with JournalReader(args.journal) as reader:
        config = reader.config()
        state = reader.state()
    out.write(control.show_output(state, config, bool(args.json)))
    return 0


def cmd_reprint(args: argparse.Namespace, out: TextIO) -> int:
    request: dict[str, Any] = {"cmd": "reprint", "ticket": args.ticket}
    if args.printer:
        request["printer"] = args.printer
    reply = _ask_gateway(args, request)
    if reply is None:
        raise CliError("reprint needs the running gateway (it drives the printers); start `counterfloor gateway run`")
    out.write(str(reply.get("output", "")))
    return 0


def cmd_confirm_time(args: argparse.Namespace, out: TextIO) -> int:
    """`office confirm-time [--time HH:MM]`: without --time, what the running gateway's clock says
    and whether it is trusted (exit 1 while the business day waits for it); with the time read on
    a watch, staff confirm the gateway's clock (docs/operations.md, "The clock")."""
    if args.time is None:
        reply = _ask_gateway(args, {"cmd": "clock"})
        if reply is None:
            raise CliError("confirm-time needs the running gateway: it is the gateway's clock that opens the day")
        out.write(str(reply.get("output", "")))
        clock = reply.get("clock")
        return 0 if isinstance(clock, dict) and clock.get("trusted") else EXIT_REFUSED
    request: dict[str, Any] = {"cmd": "confirm-time", "time": args.time, "id": control.new_request_id()}
    with contextlib.suppress(OSError, KeyError):  # no user name known (a bare container): nobody named
        request["by"] = getpass.getuser()[:64] or None  # who vouched: the audit record's sender
    reply = _ask_gateway(args, request)
    if reply is None:
        raise CliError("confirm-time needs the running gateway: it is the gateway's clock that opens the day")
    out.write(str(reply.get("output", "")))
    return 0


def cmd_printer_status(args: argparse.Namespace, out: TextIO) -> int:
    reply = _ask_gateway(args, {"cmd": "status", "json": bool(args.json)})
    if reply is None:
        raise CliError("printer status needs the running gateway (it polls the printers)")
    out.write(str(reply.get("output", "")))
    return 0


def cmd_firmware(args: argparse.Namespace, out: TextIO) -> int:
    """`counterfloor firmware provision|push|restart --device ID`: a maintenance job on the running
    gateway (it alone talks on the bus; gateway.maintenance), then its progress until it is over."""
    request: dict[str, Any] = {"cmd": f"firmware-{args.action}", "device": args.device}
    if args.action == "push":
        if not args.bundle.is_file():
            raise CliError(f"{args.bundle}: no such bundle file", EXIT_USAGE)
        request["bundle"] = str(args.bundle.resolve())  # read by the gateway, on this machine
        if args.version is not None:
            request["version"] = args.version
    reply = _ask_gateway(args, request)
    if reply is None:
        raise CliError(f"firmware {args.action} needs the running gateway: it alone talks on the bus")
    job, shown, deadline = reply["job"], "", time.monotonic() + args.timeout
    while reply.get("pending"):
        if time.monotonic() > deadline:
            raise CliError(f"{args.device}: not over within {args.timeout:g} s (job {job} goes on in the gateway)")
        time.sleep(0.25)  # the gateway's job moves with its bus cycle; ask again
        reply = _ask_gateway(args, {"cmd": "firmware-status", "job": job})
        assert reply is not None
        line = f"{args.device}: {reply.get('state')}"
        if "progress" in reply and reply.get("pending"):
            line += f" {reply['progress']:.0%}"
        if line != shown:
            out.write(line + "\n")
            shown = line
    if not shown.endswith(str(reply.get("state"))):
        out.write(f"{args.device}: {reply.get('state')}\n")
    return 0


def cmd_gateway_restore(args: argparse.Namespace, out: TextIO) -> int:
    """`counterfloor gateway restore`: today from central (gateway.restore), into a new journal."""
    from gateway.mqtt_client import BrokerConfigError, broker_login
    from gateway.restore import RestoreError, fetch_from_central, restore_journal

    config, text = _load(args.config)
    journal = journal_path(config, args.journal)
    if journal.exists() or journal.is_symlink():
        raise CliError(f"{journal} exists: a restore makes a new journal and never writes over one", EXIT_USAGE)
    if not args.timeout > 0:
        raise CliError(f"--timeout must be a positive number of seconds (got {args.timeout})", EXIT_USAGE)
    if args.broker is None and config.broker.url is None:
        raise CliError("a restore needs the broker central listens on: give --broker or set [broker] url", EXIT_USAGE)
    try:
        login = broker_login(
            config.broker, url=args.broker, auth_file=args.broker_auth, base=Path(config.source).parent
        )
    except BrokerConfigError as exc:
        raise CliError(f"{config.source}: {exc}", EXIT_USAGE) from None
    try:
        records, session = fetch_from_central(login, config.id, args.timeout)
        done = restore_journal(journal, config, text, records, session)
    except RestoreError as exc:
        raise CliError(f"restore: {exc}") from None
    out.write(
        f"restored {journal}: {config.id} {done.day.isoformat()}, seq {done.first_seq}–{done.last_seq}, "
        f"{done.tickets} tickets ({done.waiting} waiting); numbers continue; start it with `counterfloor gateway run`\n"
    )
    return 0


def cmd_gateway_run(args: argparse.Namespace, out: TextIO) -> int:
    config, text = _load(args.config)
    if args.run_for is not None and not args.run_for > 0:  # `not >` so that nan is refused too
        raise CliError(f"--run-for must be a positive number of seconds (got {args.run_for})", EXIT_USAGE)
    journal = journal_path(config, args.journal)
    clock_from = args.clock_from
    if clock_from is not None and clock_from.tzinfo is None:
        clock_from = clock_from.replace(tzinfo=config.tz)
    sock = socket_path(journal, config.gateway.socket, args.socket)
    run_gateway(
        config,
        text,
        journal,
        sock,
        out,
        args.run_for,
        clock_from,
        args.broker,
        args.broker_auth,
        metrics_port=args.metrics_port,
        metrics_address=args.metrics_address,
    )
    return 0


def cmd_prune(args: argparse.Namespace, out: TextIO) -> int:
    """The floor manager's purge of old days, after the gateway refused one (a clock leap?)."""
    if _ask_gateway(args, {"cmd": "ping"}) is not None:
        raise CliError("prune: stop the gateway first (it holds the journal); then prune and start it again")
    with TicketJournal.open(args.journal) as journal:
        deleted = journal.prune_before(args.before)
    out.write(f"{deleted} events of days before {args.before} deleted from {args.journal}\n")
    return 0


def event_log_line(event: ev.Event, office: str) -> str:
    """One line of the exported event log (docs/events.md): `office export` and `sim` write these."""
    return json.dumps(ev.public_record(event, office), ensure_ascii=False, separators=(",", ":")) + "\n"


def cmd_export(args: argparse.Namespace, out: TextIO) -> int:
    if args.date and (args.first or args.last):
        raise CliError("give either --date or --from/--to, not both", EXIT_USAGE)
    first = args.date or args.first
    last = args.date or args.last
    if first and last and first > last:
        raise CliError(f"--from {first} is after --to {last}", EXIT_USAGE)
    if args.out is not None:
        problem = output_problem(args.out)
        if problem:
            raise CliError(f"--out: {problem}", EXIT_USAGE)
    written = salvage.Tally()
    damage: list[str] = []

    def export(sink: TextIO) -> None:
        def write(event: ev.Event, office: str) -> None:
            sink.write(event_log_line(event, office))
            written.add(event.seq)

        try:
            # Without a writer running, read so that nothing beside the journal is written:
            # a damaged journal must be left exactly as it is found.
            with salvage.open_reader(args.journal) as reader:
                office = reader.office_id
                for event in reader.events(first, last):
                    # Consecutive days hold consecutive seqs: a seq twice or skipped is a
                    # damaged page SQLite read without noticing (the day index's, say).
                    if written.count and event.seq != written.last + 1:
                        raise JournalCorrupt(f"{args.journal}: event {event.seq} read after event {written.last}")
                    write(event, office)
        except (JournalCorrupt, NotAJournal) as exc:
            # Damage (or a header too damaged to say what the file is): export what is readable,
            # then say what is missing. The --out file starts again, all of it salvaged (a page
            # read before the damage showed may be the damaged one); stdout cannot be taken
            # back, so it goes on after what it has.
            after = written.last
            with salvage.Salvage.open(args.journal, exc) as rescue:
                if sink is not out:
                    sink.seek(0)
                    sink.truncate()
                    written.count, written.first, written.last, after = 0, None, 0, 0
                office = rescue.office or ""
                lo, hi = (first.isoformat() if first else ""), (last.isoformat() if last else "9999-12-31")
                for day, event in rescue.events():
                    if event.seq > after and lo <= day <= hi:
                        write(event, office)
                damage.append(rescue.report(first, last, written, after))

    if args.out:
        tmp = Path(str(args.out) + ".partial")
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                export(f)
            tmp.replace(args.out)
        except OSError as exc:  # a full disk: no half-written file is left behind
            tmp.unlink(missing_ok=True)
            if exc.filename is not None and os.fspath(exc.filename) not in (str(tmp), str(args.out)):
                raise  # the journal's (unreadable): main() names it
            raise CliError(f"--out: cannot write {args.out}: {exc.strerror or exc}") from None
        except BaseException:  # nor after a journal that cannot be read at all
            tmp.unlink(missing_ok=True)
            raise
        out.write(f"{written.count} events written to {args.out}\n")
    else:
        export(out)
    if damage:
        raise CliError(damage[0])
    return 0


def _add_office(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    office = sub.add_parser("office", help="the floor manager's commands on an office journal")
    osub = office.add_subparsers(dest="action", required=True, metavar="ACTION")

    p = osub.add_parser("init", help="create a journal for an office config")
    p.add_argument("--config", type=Path, required=True)
    _journal_arg(p)
    p.set_defaults(func=cmd_init)

    p = osub.add_parser(
        "reconfigure", help="a changed config of the same office: the running gateway applies it at once"
    )
    p.add_argument("--config", type=Path, required=True)
    _journal_arg(p)
    _socket_arg(p)
    p.set_defaults(func=cmd_reconfigure)

    def action(name: str, help_: str, build: Callable[[argparse.Namespace], dict[str, Any]]) -> argparse.ArgumentParser:
        p = osub.add_parser(name, help=help_)
        _journal_arg(p)
        _socket_arg(p)
        _at_arg(p)
        p.set_defaults(func=_command_runner(build))
        return p

    action("issue", "issue a ticket", lambda a: {"service": a.service}).add_argument("--service", required=True)
    counter_commands: list[tuple[str, str]] = [
        ("call", "call the next ticket to a counter (ends the current one)"),
        ("recall", "call the current ticket again"),
        ("no-show", "the current ticket did not come"),
        ("served", "the current ticket's service is finished"),
        ("pause", "pause a counter (finishes its customer)"),
        ("resume", "resume a paused counter"),
        ("close", "close a counter (finishes its customer)"),
    ]
    for name, help_ in counter_commands:
        action(name, help_, lambda a: {"counter": a.counter}).add_argument("--counter", required=True)
    p = action(
        "open",
        "open a counter",
        # `is not None`: an empty --services is refused as a bad list, not taken as the default.
        lambda a: {"counter": a.counter, **({"services": a.services.split(",")} if a.services is not None else {})},
    )
    p.add_argument("--counter", required=True)
    p.add_argument("--services", help="comma-separated service ids in priority order (default: the config's)")
    p = action("transfer", "send a ticket to another service, keeping its place", _transfer)
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--ticket")
    who.add_argument("--counter", help="the ticket being served at this counter")
    p.add_argument("--to", required=True, dest="to_service", metavar="SERVICE")
    p = action("set-mode", "override one date's plan: closed, or open in one mode (docs/calendar.md)", _set_mode)
    p.add_argument("--date", required=True, help="the date, YYYY-MM-DD: today or a day ahead")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--closed", action="store_true", help="the office is closed that day")
    how.add_argument("--mode", choices=["office", "evening", "saturday"], help="open in this mode")
    p.add_argument("--from", dest="opens", metavar="HH:MM", help="with --mode: opening (default: the mode's hours)")
    p.add_argument("--to", dest="closes", metavar="HH:MM", help="with --mode: closing")
    p.add_argument("--reason-ja", help="why, in Japanese (shown on the dispensers and boards)")
    p.add_argument("--reason-en", help="why, in English")
    action("clear-mode", "give a date its calendar's plan back", lambda a: {"date": a.date}).add_argument(
        "--date", required=True
    )
    action("hold", "put a ticket on hold", lambda a: {"ticket": a.ticket}).add_argument("--ticket", required=True)
    action("return", "return a held ticket to its place", lambda a: {"ticket": a.ticket}).add_argument(
        "--ticket", required=True
    )

    p = osub.add_parser("reprint", help="print a ticket again on the running gateway's printer (same QR code)")
    _journal_arg(p)
    _socket_arg(p)
    p.add_argument("--ticket", required=True, help="the ticket, e.g. B-023")
    p.add_argument("--printer", metavar="ID", help="a [[printers]] id (default: a printer of its service's dispenser)")
    p.set_defaults(func=cmd_reprint)

    p = osub.add_parser(
        "confirm-time",
        help="confirm the running gateway's clock, so that a business day opens without NTP (docs/operations.md)",
    )
    _journal_arg(p)
    _socket_arg(p)
    p.add_argument(
        "--time",
        metavar="HH:MM",
        help="the time on your watch (or YYYY-MM-DD HH:MM); without it, what the gateway's clock says",
    )
    p.set_defaults(func=cmd_confirm_time)

    p = osub.add_parser("show", help="show the queue and counters")
    _journal_arg(p)
    _socket_arg(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_show)

    p = osub.add_parser(
        "prune",
        help="delete the stored days before a date (after the gateway refused a purge: check the clock first)",
    )
    _journal_arg(p)
    _socket_arg(p)
    p.add_argument("--before", type=_iso_date, required=True, help="the first business day to keep")
    p.set_defaults(func=cmd_prune)

    p = osub.add_parser("export", help="write the event log as JSON Lines (docs/events.md)")
    _journal_arg(p)
    p.add_argument("--date", type=_iso_date, help="one business day")
    p.add_argument("--from", dest="first", type=_iso_date, help="first business day")
    p.add_argument("--to", dest="last", type=_iso_date, help="last business day")
    p.add_argument("--out", type=Path, help="file to write (default: standard output)")
    p.set_defaults(func=cmd_export)
    _add_watch(osub)


def _set_mode(a: argparse.Namespace) -> dict[str, Any]:
    request: dict[str, Any] = {"date": a.date, "closed": bool(a.closed)}
    if a.mode:
        request["mode"] = a.mode
    if (a.opens is None) != (a.closes is None):
        raise CliError("set-mode: give both --from and --to, or neither", EXIT_USAGE)
    if a.opens is not None:
        request["hours"] = {"from": a.opens, "to": a.closes}
    if (a.reason_ja is None) != (a.reason_en is None):
        raise CliError("set-mode: give the reason in both languages (--reason-ja and --reason-en)", EXIT_USAGE)
    if a.reason_ja is not None:
        request["reason"] = {"ja": a.reason_ja, "en": a.reason_en}
    return request


def _add_watch(osub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from counterfloor import watch_cli

    def run(args: argparse.Namespace, out: TextIO) -> int:
        try:
            return watch_cli.run(args, out)
        except watch_cli.WatchUsageError as exc:
            raise CliError(str(exc), EXIT_USAGE) from None
        except watch_cli.WatchFailed as exc:
            raise CliError(str(exc)) from None

    p = osub.add_parser("watch", help="a live view of any office, or every office, from the MQTT broker (docs/mqtt.md)")
    watch_cli.add_arguments(p)
    p.set_defaults(func=run)


def _transfer(a: argparse.Namespace) -> dict[str, Any]:
    who = {"ticket": a.ticket} if a.ticket is not None else {"counter": a.counter}
    return {"to": a.to_service, **who}


def _add_gateway(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    gateway = sub.add_parser("gateway", help="run the office's gateway")
    gsub = gateway.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = gsub.add_parser(
        "run",
        help="run the devices of the config on their buses and serve office commands on a control socket",
    )
    p.add_argument("--config", type=Path, required=True, help="the office config, with [gateway] and [[devices]]")
    p.add_argument(
        "--journal",
        type=Path,
        help="the journal (default: $COUNTERFLOOR_JOURNAL, then gateway.journal); created if missing",
    )
    p.add_argument("--socket", type=Path, help="the control socket (default: gateway.socket, or <journal>.sock)")
    p.add_argument("--run-for", type=float, metavar="SECONDS", help="stop after this long (tests, demos)")
    p.add_argument(
        "--clock-from",
        type=_iso_moment,
        metavar="TIME",
        help="run on a clock that starts at TIME (ISO 8601; naive: the office's local time) instead of the "
        "system's: for tests and demos on a journal of their own, never on a live floor",
    )
    p.add_argument(
        "--broker",
        metavar="URL",
        help="publish the floor to this MQTT broker and take its commands (mqtt://host:port or "
        "mqtts://host:port; default: the config's [broker] url, none: no publishing)",
    )
    p.add_argument(
        "--broker-auth",
        type=Path,
        metavar="FILE",
        help="the broker password (or user:password) from this file, mode 600 (over [broker] password_file); "
        "never a secret on the command line",
    )
    add_metrics_options(p, "queues, waits, devices, the broker")
    p.set_defaults(func=cmd_gateway_run)
    r = gsub.add_parser(
        "restore",
        help="make a replacement gateway's journal from central's copy of today, then carry on with `gateway run`",
    )
    r.add_argument("--config", type=Path, required=True, help="the office config")
    r.add_argument("--journal", type=Path, help="the journal to make (default as for `run`); refused if it exists")
    r.add_argument("--broker", metavar="URL", help="the broker central listens on (default: the config's [broker] url)")
    r.add_argument("--broker-auth", type=Path, metavar="FILE", help="the broker password from this file, as for `run`")
    r.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for central's copy (default 60)")
    r.set_defaults(func=cmd_gateway_restore)


def _add_demo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from counterfloor import demo

    p = sub.add_parser("demo", help="simulate an office day at accelerated speed")
    demo.add_arguments(p)
    p.set_defaults(func=lambda args, out: demo.run(args))


def _add_sim(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from counterfloor import sim_cli

    p = sub.add_parser("sim", help="simulate office days as event-log files (docs/simulation.md)")
    sim_cli.add_arguments(p)
    p.set_defaults(func=lambda args, out: sim_cli.run(args, out))


def _add_calendar(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from counterfloor import calendar_cli

    def run(args: argparse.Namespace, out: TextIO) -> int:
        try:
            return calendar_cli.run(args, out)
        except calendar_cli.CalendarUsageError as exc:
            raise CliError(str(exc), EXIT_USAGE) from None

    p = sub.add_parser("calendar", help="the office's days: open periods, services, why closed (docs/calendar.md)")
    calendar_cli.add_arguments(p)
    p.set_defaults(func=run)


def _add_ticket(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from counterfloor import ticket_cli

    def run(args: argparse.Namespace, out: TextIO) -> int:
        try:
            return ticket_cli.run(args, out)
        except ticket_cli.TicketUsageError as exc:
            raise CliError(str(exc), EXIT_USAGE) from None

    p = sub.add_parser("ticket", help="write one sample ticket's exact ESC/POS bytes (docs/printing.md)")
    ticket_cli.add_arguments(p)
    p.set_defaults(func=run)


def _add_printer(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from counterfloor import printer_cli, ticket_cli

    def run(args: argparse.Namespace, out: TextIO) -> int:
        try:
            return printer_cli.run(args, out)
        except ticket_cli.TicketUsageError as exc:
            raise CliError(str(exc), EXIT_USAGE) from None
        except printer_cli.PrinterTestFailed as exc:
            raise CliError(str(exc)) from None

    p = sub.add_parser("printer", help="ticket printers (docs/operations.md)")
    psub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    t = psub.add_parser("test", help="print a test ticket on a printer, reporting its status first")
    printer_cli.add_arguments(t)
    t.set_defaults(func=run)
    t = psub.add_parser("status", help="the running gateway's printers: state, paper, cover, dispensers")
    _journal_arg(t)
    _socket_arg(t)
    t.add_argument("--json", action="store_true", help="machine-readable output")
    t.set_defaults(func=cmd_printer_status)
    t = psub.add_parser("probe", help="ask a printer what it is (GS I) and how it is, and which model it matches")
    _add_printer_probe(t)


def _add_printer_probe(p: argparse.ArgumentParser) -> None:
    from counterfloor import printer_probe

    def run(args: argparse.Namespace, out: TextIO) -> int:
        try:
            return printer_probe.run(args, out)
        except printer_probe.ProbeFailed as exc:
            raise CliError(str(exc)) from None

    printer_probe.add_arguments(p)
    p.set_defaults(func=run)


def _add_callout(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from counterfloor import callout_cli

    def run(args: argparse.Namespace, out: TextIO) -> int:
        try:
            return callout_cli.run(args, out)
        except callout_cli.CalloutUsageError as exc:
            raise CliError(str(exc), EXIT_USAGE) from None

    p = sub.add_parser("callout", help="write the spoken call-out of one call to a WAV file (docs/callout.md)")
    callout_cli.add_arguments(p)
    p.set_defaults(func=run)


def _add_signage(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from counterfloor import signage_cli

    def run(args: argparse.Namespace, out: TextIO) -> int:
        try:
            out.write(signage_cli.render(args))
        except signage_cli.SignageArgError as exc:
            raise CliError(str(exc), EXIT_USAGE) from None
        return 0

    p = sub.add_parser("signage", help="waiting-room boards and call displays (docs/signage.md)")
    ssub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    r = ssub.add_parser("render", help="render the board at a moment of a seeded simulated day to a PNG file")
    signage_cli.add_arguments(r)
    r.set_defaults(func=run)


def _add_firmware(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("firmware", help="the bus devices' keys, firmware and restarts, on the running gateway")
    fsub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    helps = {
        "provision": "give a device a new key (FW_KEY), kept in the gateway's key file (mode 0600)",
        "push": "install a firmware bundle on a device, authenticated with its key, and check its health",
        "restart": "restart a device (RESTART): answered once the device acknowledged it",
    }
    for action, help_ in helps.items():
        a = fsub.add_parser(action, help=help_)
        _journal_arg(a)
        _socket_arg(a)
        a.add_argument("--device", required=True, help="the device: <bus>-<addr>, as on MQTT (docs/mqtt.md)")
        a.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for the result (default 900)")
        if action == "push":
            a.add_argument("--bundle", type=Path, required=True, help="the bundle file (gateway.firmware_update)")
            a.add_argument("--version", help="MAJOR.MINOR.PATCH (default: the bundle's `version` file)")
        a.set_defaults(func=cmd_firmware)


def _add_predict(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from counterfloor import predict_cli  # its errors are its own: `counterfloor predict: …`, exit 2

    predict_cli.add_parser(sub)


def _add_central(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from counterfloor import central_cli  # its errors are its own: `counterfloor central: …`

    central_cli.add_parser(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="counterfloor",
        description="Queue tickets, counters and signage for public-service counter floors.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_demo(sub)
    _add_sim(sub)
    _add_office(sub)
    _add_gateway(sub)
    _add_calendar(sub)
    _add_callout(sub)
    _add_ticket(sub)
    _add_printer(sub)
    _add_signage(sub)
    _add_firmware(sub)
    _add_central(sub)
    _add_predict(sub)
    return parser


def _fail(message: str, code: int) -> NoReturn:
    sys.stderr.write(f"counterfloor: error: {message}\n")
    raise SystemExit(code)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args, sys.stdout)
    except CliError as exc:
        _fail(str(exc), exc.code)
    except ConfigError as exc:
        _fail(str(exc), EXIT_USAGE)
    except m.OfficeError as exc:
        _fail(str(exc), EXIT_REFUSED)
    except (JournalError, GatewayError) as exc:
        _fail(str(exc), EXIT_REFUSED)
    except sqlite3.DatabaseError as exc:
        # Damage met only while a command was being stored (a page the write needed): nothing
        # was stored; still one line naming the file.
        _fail(f"{getattr(args, 'journal', None) or 'the journal'}: {exc}", EXIT_REFUSED)
    except BrokenPipeError:
        return 0
    except OSError as exc:
        # A file problem no command foresaw (a name too long, a full disk): still one line naming
        # the file, not a traceback.
        where = f"{exc.filename}: " if exc.filename else ""
        _fail(f"{where}{exc.strerror or exc}", EXIT_REFUSED)
    return code


if __name__ == "__main__":
    raise SystemExit(main())

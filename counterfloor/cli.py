"""The `counterfloor` command line: the floor manager's office commands, export, and the demo.

A thin shell: parse arguments, open the journal, run one command, print one readable result.
Errors are one clear line on stderr and a non-zero exit (2 for bad usage, 1 for refusals).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any, NoReturn, TextIO

from gateway.journal import JournalError, JournalReader, TicketJournal, new_token
from office import events as ev
from office import model as m
from office.config import ConfigError, OfficeConfig, load_config
from office.state import OfficeState, TicketStatus

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
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time like 2027-03-15T09:30+09:00: {text!r}") from None


def _journal_arg(p: argparse.ArgumentParser) -> None:
    env = os.environ.get("COUNTERFLOOR_JOURNAL")
    p.add_argument(
        "--journal",
        type=Path,
        default=Path(env) if env else None,
        required=env is None,
        help="the office's journal file (default: $COUNTERFLOOR_JOURNAL)",
    )


def _at_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--at",
        type=_iso_moment,
        help="act as if it were this moment (ISO 8601; without an offset, the office's local time) — for "
        "scripts and tests; the journal never goes back in time",
    )


# -- output helpers ---------------------------------------------------------------------------
def _hm(t: datetime | None, config: OfficeConfig) -> str:
    return t.astimezone(config.tz).strftime("%H:%M") if t else "--:--"


def _describe_effects(decision: m.Decision, config: OfficeConfig, out: TextIO) -> None:
    for effect in decision.effects:
        if isinstance(effect, m.TicketReady):
            service = config.service(effect.service)
            wait = effect.wait
            out.write(
                f"{effect.ticket}  {service.name.ja} / {service.name.en}\n"
                f"  position {effect.position} ({effect.ahead} ahead), estimated wait "
                f"{wait.low_minutes}–{wait.high_minutes} min, issued {_hm(effect.issued_at, config)}\n"
                f"  status page: {config.public_base_url}/t/{effect.token}\n"
            )
        elif isinstance(effect, m.ShowCall):
            verb = "recalled" if effect.recall else "called"
            out.write(f"{effect.ticket} {verb} to counter {effect.counter}\n")
        elif isinstance(effect, m.NobodyWaiting):
            out.write(f"counter {effect.counter}: nobody waiting for {', '.join(effect.services)}\n")
    for event in decision.events:
        if isinstance(event, ev.Served):
            out.write(f"{event.ticket} served at counter {event.counter}\n")
        elif isinstance(event, ev.NoShow):
            fate = "back in the queue (last place)" if event.requeued else "dropped"
            out.write(f"{event.ticket} marked no-show at counter {event.counter}: {fate}\n")
        elif isinstance(event, ev.Transferred):
            out.write(f"{event.ticket} transferred {event.from_service} → {event.to_service}, keeping its place\n")
        elif isinstance(event, ev.Held):
            out.write(f"{event.ticket} on hold\n")
        elif isinstance(event, ev.Returned):
            out.write(f"{event.ticket} back in the queue at its original place\n")
        elif isinstance(event, ev.CounterOpened):
            out.write(f"counter {event.counter} open, calling {' > '.join(event.services)}\n")
        elif isinstance(event, ev.CounterPaused | ev.CounterResumed | ev.CounterClosed):
            out.write(f"counter {event.counter} {event.TYPE.removeprefix('counter_')}\n")


def queue_table(state: OfficeState, config: OfficeConfig) -> str:
    """The queue as a readable table for the floor manager."""
    lines = [
        f"{config.name.ja} / {config.name.en} ({config.id})",
        f"business day {state.day or '—'}, last event #{state.last_seq} at {_hm(state.last_ts, config)}",
        "",
        f"{'service':<32} {'waiting':>7}  next",
    ]
    for s in config.services:
        waiting = state.waiting(s.id)
        shown = " ".join(waiting[:6]) + (" …" if len(waiting) > 6 else "")
        lines.append(f"{s.prefix} {s.id:<30} {len(waiting):>7}  {shown}")
    held = [t.id for t in state.tickets.values() if t.status is TicketStatus.HELD]
    if held:
        lines.append(f"on hold: {' '.join(held)}")
    lines += ["", f"{'counter':<8} {'status':<7} {'serving':<8} {'since':<6} calls"]
    for c in config.counters:
        live = state.counters.get(c.id)
        status = live.status.value if live else "closed"
        current = live.current if live and live.current else ""
        since = _hm(state.tickets[current].called_at, config) if current else ""
        services = live.services if live and live.services else c.services
        lines.append(f"{c.id:<8} {status:<7} {current:<8} {since:<6} {' > '.join(services)}")
    counts: dict[str, int] = {}
    for t in state.tickets.values():
        counts[t.status.value] = counts.get(t.status.value, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no tickets yet"
    lines += ["", f"today: {len(state.tickets)} tickets ({summary})"]
    return "\n".join(lines) + "\n"


def queue_json(state: OfficeState, config: OfficeConfig) -> dict[str, Any]:
    return {
        "office": config.id,
        "day": state.day.isoformat() if state.day else None,
        "last_seq": state.last_seq,
        "services": {s.id: state.waiting(s.id) for s in config.services},
        "held": [t.id for t in state.tickets.values() if t.status is TicketStatus.HELD],
        "counters": {
            cid: {"status": c.status.value, "serving": c.current, "services": list(c.services)}
            for cid, c in state.counters.items()
        },
        "tickets": {t.id: t.status.value for t in state.tickets.values()},
    }


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
    config, text = _load(args.config)
    with TicketJournal.open(args.journal, (config, text)):
        pass
    out.write(f"journal {args.journal} now uses {args.config}\n")
    return 0


def _command_runner(build: Callable[[argparse.Namespace], m.Command]) -> Callable[[argparse.Namespace, TextIO], int]:
    def run(args: argparse.Namespace, out: TextIO) -> int:
        with TicketJournal.open(args.journal) as journal:
            config = journal.office.config
            decision = journal.execute(build(args), _now(args, config))
        _describe_effects(decision, config, out)
        refusals = [e for e in decision.effects if isinstance(e, m.IssueRefused)]
        if refusals:
            raise CliError(f"refused ({refusals[0].reason}): {refusals[0].message}")
        return 0

    return run


def cmd_show(args: argparse.Namespace, out: TextIO) -> int:
    # A writer's lock is not needed to look: recover the state read-only.
    with JournalReader(args.journal) as reader:
        config = reader.config()
        state = OfficeState()
        days = reader.days()
        if days:
            events = list(reader.events(date.fromisoformat(days[-1])))
            state = OfficeState(last_seq=events[0].seq - 1)
            for event in events:
                state.apply(event)
    if args.json:
        out.write(json.dumps(queue_json(state, config), ensure_ascii=False, indent=2) + "\n")
    else:
        out.write(queue_table(state, config))
    return 0


def cmd_export(args: argparse.Namespace, out: TextIO) -> int:
    if args.date and (args.first or args.last):
        raise CliError("give either --date or --from/--to, not both", EXIT_USAGE)
    first = args.date or args.first
    last = args.date or args.last
    if first and last and first > last:
        raise CliError(f"--from {first} is after --to {last}", EXIT_USAGE)
    with JournalReader(args.journal) as reader:
        office = reader.office_id
        lines = (
            json.dumps(ev.public_record(e, office), ensure_ascii=False, separators=(",", ":")) + "\n"
            for e in reader.events(first, last)
        )
        if args.out:
            tmp = Path(str(args.out) + ".partial")
            with open(tmp, "w", encoding="utf-8") as f:
                count = sum(1 for _ in map(f.write, lines))
            tmp.replace(args.out)
            out.write(f"{count} events written to {args.out}\n")
        else:
            out.writelines(lines)
    return 0


def _add_office(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    office = sub.add_parser("office", help="the floor manager's commands on an office journal")
    osub = office.add_subparsers(dest="action", required=True, metavar="ACTION")

    p = osub.add_parser("init", help="create a journal for an office config")
    p.add_argument("--config", type=Path, required=True)
    _journal_arg(p)
    p.set_defaults(func=cmd_init)

    p = osub.add_parser("reconfigure", help="make a journal use a changed config of the same office")
    p.add_argument("--config", type=Path, required=True)
    _journal_arg(p)
    p.set_defaults(func=cmd_reconfigure)

    def action(name: str, help_: str, build: Callable[[argparse.Namespace], m.Command]) -> argparse.ArgumentParser:
        p = osub.add_parser(name, help=help_)
        _journal_arg(p)
        _at_arg(p)
        p.set_defaults(func=_command_runner(build))
        return p

    action("issue", "issue a ticket", lambda a: m.IssueTicket(a.service, new_token())).add_argument(
        "--service", required=True
    )
    counter_commands: list[tuple[str, str, Callable[[str], m.Command]]] = [
        ("call", "call the next ticket to a counter (ends the current one)", m.CallNext),
        ("recall", "call the current ticket again", m.Recall),
        ("no-show", "the current ticket did not come", m.MarkNoShow),
        ("served", "the current ticket's service is finished", m.FinishService),
        ("pause", "pause a counter (finishes its customer)", m.PauseCounter),
        ("resume", "resume a paused counter", m.ResumeCounter),
        ("close", "close a counter (finishes its customer)", m.CloseCounter),
    ]
    for name, help_, make in counter_commands:
        action(name, help_, _on_counter(make)).add_argument("--counter", required=True)
    p = action(
        "open",
        "open a counter",
        lambda a: m.OpenCounter(a.counter, tuple(a.services.split(",")) if a.services else None),
    )
    p.add_argument("--counter", required=True)
    p.add_argument("--services", help="comma-separated service ids in priority order (default: the config's)")
    p = action("transfer", "send a ticket to another service, keeping its place", _transfer)
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--ticket")
    who.add_argument("--counter", help="the ticket being served at this counter")
    p.add_argument("--to", required=True, dest="to_service", metavar="SERVICE")
    action("hold", "put a ticket on hold", lambda a: m.Hold(a.ticket)).add_argument("--ticket", required=True)
    action("return", "return a held ticket to its place", lambda a: m.Return(a.ticket)).add_argument(
        "--ticket", required=True
    )

    p = osub.add_parser("show", help="show the queue and counters")
    _journal_arg(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_show)

    p = osub.add_parser("export", help="write the event log as JSON Lines (docs/events.md)")
    _journal_arg(p)
    p.add_argument("--date", type=_iso_date, help="one business day")
    p.add_argument("--from", dest="first", type=_iso_date, help="first business day")
    p.add_argument("--to", dest="last", type=_iso_date, help="last business day")
    p.add_argument("--out", type=Path, help="file to write (default: standard output)")
    p.set_defaults(func=cmd_export)


def _on_counter(make: Callable[[str], m.Command]) -> Callable[[argparse.Namespace], m.Command]:
    return lambda a: make(a.counter)


def _transfer(a: argparse.Namespace) -> m.Command:
    return m.Transfer(a.to_service, ticket=a.ticket, counter=a.counter)


def _add_demo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from counterfloor import demo

    p = sub.add_parser("demo", help="simulate an office day at accelerated speed")
    demo.add_arguments(p)
    p.set_defaults(func=lambda args, out: demo.run(args))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="counterfloor",
        description="Queue tickets, counters and signage for public-service counter floors.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_demo(sub)
    _add_office(sub)
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
    except JournalError as exc:
        _fail(str(exc), EXIT_REFUSED)
    except BrokenPipeError:
        return 0
    return code


if __name__ == "__main__":
    raise SystemExit(main())

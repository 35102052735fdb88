"""Printing tickets at the gateway: one small state machine per printer, and what the dispensers
beside a printer show and allow.

Owns, per printer, the order of print jobs, when its real-time status is asked (between jobs,
every STATUS_POLL_S on the gateway's injected clock, and after each job to confirm it; never while
a job's bytes are going out), and what a status or a silence means; and, per dispenser, the
printer's consequences: issuing stops (lamps dark, presses refused, "ask staff") while its
printer cannot print, and a failed ticket is offered for reprint at the dispenser for
REPRINT_OFFER_S. `PrinterMachine` is pure (bytes and times in, actions and notices out; it draws
a job's next piece only when its shell is asked to, with DrawPiece); `PrinterLine` puts one on a
port (hal.printer); `Printing` ties the printers to the journal (print_failed / reprinted events)
and to the dispensers (SetPrinter).

Guarantees (docs/printing.md, "At the gateway"): a ticket is printed only after it is committed
(the journal releases TicketReady after the commit); a job's bytes are sent at most once — a
failed job is never sent again by itself, only a reprint someone asks for prints again (the same
token, so the same QR code); a job is never sent to a printer last seen unable to print. A job
is streamed: its first piece (gateway.ticket_bytes.ticket_chunks: the top of the ticket) goes out
while the rest is still to be drawn, the next piece drawn when what was drawn before is nearly
all taken. Printed means printed: where the printer's model answers one, a job ends with a
request answered only after what came before it is processed (GS ( H process ID, or GS r 1),
and it counts printed only on that answer; a fault while its tail prints, or no answer within
CONFIRM_TIMEOUT_S, fails it. A ticket whose drawing fails part way is a failed print like any other (marked
unprinted, offered for reprint), and the whole commands drawn before still go out, so that the
printer is not left inside a raster band that would swallow the next job. A gateway killed
between the commit and the last byte leaves the ticket valid but not marked unprinted (nothing
is written per successful print, to keep the press-to-paper path to one fsync): staff reprint it
by number. It must not decide queue matters (office.model) or talk to the bus (gateway.bus).
"""

from __future__ import annotations

import logging
import secrets
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from gateway.device_link import SetPrinter, clip_utf8
from gateway.ticket_bytes import ticket_bytes, ticket_chunks
from hal.codec import P
from hal.printer import (
    CHUNK,
    STATUS_TIMEOUT_S,
    PrinterPortError,
    answer_of,
    open_printer,
    read_available,
    write_some,
)
from hal.printer_status import (
    FULL_REQUEST,
    NO_RESPONSE,
    PAPER_SENSOR_REQUEST,
    PROCESS_IDS,
    STATUS_KINDS,
    PrinterStatus,
    StatusFormatError,
    count_status_requests,
    find_process_ids,
    is_paper_sensor_byte,
    parse_status,
    process_id,
    process_id_request,
    sensor_paper_out,
    split_answers,
)
from office import model as m
from office.config import OfficeConfig, PrinterProfile
from office.estimate import WaitRange
from signage.catalog import both
from signage.ticket import ticket_content

STATUS_POLL_S = 2.0  # between jobs; a resident's press is rarely closer to a paper-out than this
WRITE_STALL_S = 10.0  # a printer that takes no byte for this long has failed the job
REPRINT_OFFER_S = 60.0  # how long a dispenser offers the reprint of its failed ticket
REOPEN_S = 5.0  # a port that could not be opened or was lost (USB unplugged) is tried again after this,
REOPEN_MAX_S = 20.0  # then after twice as long each time it fails again, up to this: a printer off for
# the night is not knocked on every 5 s, and one plugged back in prints within 20 s
MAX_CHUNKS_PER_STEP = 8  # bytes per gateway loop turn: 8 × CHUNK, so the bus keeps its rhythm
MAX_DRAWS_PER_STEP = 2  # pieces drawn per gateway loop turn: a raster strip takes 1-4 ms
# Printed means printed (models whose `completion` is not "none"): a ticket prints in 1-3 s after
# its last byte is taken; a printer that has not answered the completion request by then has a
# problem, or does not answer it (the config's model is wrong).
CONFIRM_TIMEOUT_S = 10.0
CONFIRM_POLL_S = 0.5  # DLE EOT while a ticket's tail prints: a fault then is seen this soon
NOT_CONFIRMED = "not_confirmed"  # print_failed's reason for a completion answer that never came
_log = logging.getLogger(__name__)


def panel_lines(*lines: str) -> tuple[str, ...]:
    """Lines for a dispenser's panel (Japanese first) cut to what one SHOW_TEXT carries: each line
    to MAX_LINE bytes, and the last lines dropped while the whole is too long (an installation's
    own catalogue may have longer words than ours)."""
    out = [clip_utf8(line, P.MAX_LINE) for line in lines[: P.MAX_LINES]]
    while out and 1 + sum(1 + len(line.encode()) for line in out) > P.MAX_PAYLOAD:
        out.pop()
    return tuple(out)


class PrinterState(Enum):
    UNKNOWN = "unknown"  # not heard from yet
    READY = "ready"
    PRINTING = "printing"
    STOPPED = "stopped"  # cannot print: paper out, cover open, error, or not answering


@dataclass(frozen=True, slots=True)
class PrintJob:
    """One ticket's bytes for one printer: `data` the whole job, or its pieces in order, each
    whole commands, made only when asked for (gateway.ticket_bytes.ticket_chunks), which can be
    gone through once: a job's bytes are sent once. `addr`: the dispenser that asked, None for staff."""

    ticket: str
    service: str
    data: bytes | Iterable[bytes]
    addr: int | None = None
    reprint: bool = False


# -- what the machine asks its port to do -----------------------------------------------------
@dataclass(frozen=True, slots=True)
class AskStatus:
    """Write FULL_REQUEST (what came before it was passed to `received` already)."""


@dataclass(frozen=True, slots=True)
class WriteBytes:
    data: bytes


@dataclass(frozen=True, slots=True)
class DrawPiece:
    """Call `draw`: the job's next piece is needed (what was drawn before is nearly all taken)."""


Action = AskStatus | WriteBytes | DrawPiece


# -- what it tells the gateway ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class StatusChanged:
    printer: str
    old: PrinterStatus | None
    new: PrinterStatus


@dataclass(frozen=True, slots=True)
class JobDone:
    printer: str
    job: PrintJob


@dataclass(frozen=True, slots=True)
class JobFailed:
    printer: str
    job: PrintJob
    reason: str


Notice = StatusChanged | JobDone | JobFailed


class PrinterMachine:
    """One printer's jobs and status (see the module docstring). Pure: the shell executes the
    action `next_action` returns and reports back with `wrote`, `received`, `port_failed`;
    `tick` lets time pass. Times in seconds on the gateway's monotonic clock.

    `completion` is the printer model's (office.printer_models): "process-id" ends each job with
    GS ( H and "status" with GS r 1, and the job is done only when that is answered (polling DLE
    EOT every `confirm_poll_s` meanwhile, failing it on a fault or after `confirm_timeout_s`);
    "none" calls a job done when a status after its last byte says the printer is fine."""

    def __init__(
        self,
        printer: str,
        *,
        poll_s: float = STATUS_POLL_S,
        status_timeout_s: float = STATUS_TIMEOUT_S,
        stall_s: float = WRITE_STALL_S,
        chunk: int = CHUNK,
        completion: str = "none",
        confirm_timeout_s: float = CONFIRM_TIMEOUT_S,
        confirm_poll_s: float = CONFIRM_POLL_S,
        first_id: int | None = None,
    ) -> None:
        self.printer = printer
        self.poll_s = poll_s
        self.status_timeout_s = status_timeout_s
        self.stall_s = stall_s
        self.chunk = chunk
        self.completion = completion
        self.confirm_timeout_s = confirm_timeout_s
        self.confirm_poll_s = confirm_poll_s
        # Process IDs start anywhere: a late answer to a job of the gateway's last run (paper
        # loaded after it stopped) must not match a job of this one.
        self._ids = secrets.randbelow(PROCESS_IDS) if first_id is None else first_id
        self._expect: bytes | None = None  # the process ID the current job ends with
        self._confirm_by: float | None = None  # when the current job's completion answer is due
        self._crx = b""  # the start of a process ID response still coming
        self._owed = 0  # GS r answers owed by failed jobs' held requests: they come first
        self.status: PrinterStatus | None = None
        self.queue: deque[PrintJob] = deque()
        self.job: PrintJob | None = None
        self.sent = 0  # bytes of the current job the printer took
        self._drawn = bytearray()  # bytes of the current job drawn and not yet taken
        self._pieces: Iterator[bytes] | None = None  # the pieces still to draw; None: all drawn
        self._tail = b""  # the last bytes drawn, for a DLE EOT split between two pieces
        self._reported = False  # the current job has failed already (its drawing did)
        self._awaiting: float | None = None  # the deadline of the status answer asked for
        self._rx = bytearray()
        # Answers still due to DLE EOT sequences inside jobs' bytes (a raster image can hold
        # some): the printer sends them before the answer to our own request.
        self._answers_due = 0
        self._next_poll = 0.0
        self._progress_at = 0.0
        self.printed = 0  # jobs done
        self.failed = 0  # jobs failed

    @property
    def state(self) -> PrinterState:
        if self.job is not None:
            return PrinterState.PRINTING
        if self.status is None:
            return PrinterState.UNKNOWN
        return PrinterState.READY if self.status.can_print else PrinterState.STOPPED

    def busy_with(self, ticket: str) -> bool:
        """`ticket` is waiting or printing. A job whose drawing failed, still sending what was
        drawn before, is not: its reprint may be queued at once."""
        printing = self.job is not None and not self._reported and self.job.ticket == ticket
        return printing or any(j.ticket == ticket for j in self.queue)

    # -- events ----------------------------------------------------------------------------
    def submit(self, job: PrintJob, now: float) -> list[Notice]:
        """A job to print. Refused at once (JobFailed) while the printer is known unable to print;
        ignored if the same ticket is already waiting or printing (one paper per request)."""
        if self.busy_with(job.ticket):
            return []
        if self.state is PrinterState.STOPPED:
            return [self._fail(job, self._problem())]
        self.queue.append(job)
        return []

    def next_action(self, now: float) -> Action | None:
        """What to do on the port now, or None. The shell must do it and report the outcome."""
        if self._awaiting is not None:
            return None
        if self.job is None and self.queue and self.state is PrinterState.READY and now < self._next_poll:
            # The status is fresh and fine: start at once (the press-to-paper path).
            self._start(self.queue.popleft(), now)
        if self.job is not None:
            # No status request while a job's bytes go out: its answer would come back among
            # the answers to DLE EOT sequences inside the job's raster bytes (see `received`).
            if len(self._drawn) < self.chunk and self._pieces is not None:
                return DrawPiece()
            if self._drawn:
                return WriteBytes(bytes(self._drawn[: self.chunk]))
            if not self._confirming():
                return self._ask(now)  # every byte taken: confirm with a status before calling it done
            if self._confirm_by is None:  # the completion request is taken: its answer is due
                self._confirm_by = now + self.confirm_timeout_s
                return self._ask(now)
            return self._ask(now) if now >= self._next_poll else None
        if self.queue or now >= self._next_poll:
            return self._ask(now)
        return None

    def draw(self, now: float) -> list[Notice]:
        """Make the job's next piece (asked for with DrawPiece). A piece that cannot be made
        fails the job now (a failed print: "render: ..."); what was drawn before it is still sent
        (whole commands), so nothing is left half sent."""
        if self.job is None or self._pieces is None:
            return []
        try:
            piece = next(self._pieces)
        except StopIteration:
            self._pieces = None
            self._drawn += self._completion_request()
            return []
        except Exception as exc:  # a ticket that cannot be drawn must not stop the printer
            _log.exception("printer %s: ticket %s cannot be drawn", self.printer, self.job.ticket)
            self._pieces = None
            job = self.job
            if not self._drawn and self.sent == 0:
                self.job = None  # nothing of it reached the printer
            else:
                self._reported = True
            return [self._fail(job, f"render: {exc}")]
        # A request split between two pieces is counted once: over the join, less the tail's own.
        seam = self._tail + piece
        self._answers_due += count_status_requests(seam) - count_status_requests(self._tail)
        self._tail = seam[-2:]
        self._drawn += piece
        self._progress_at = now
        return []

    def wrote(self, n: int, now: float) -> None:
        if n > 0:
            self.sent += n
            del self._drawn[:n]
            self._progress_at = now

    def received(self, data: bytes, now: float) -> list[Notice]:
        """Bytes from the printer: the answer to the completion request, and DLE EOT answers:
        the status if one is awaited, else answers to requests inside a job (counted off).
        Anything else is noise (dropped)."""
        answers, other = split_answers(data)
        notices = self._completion_answer(other, now) if other else []
        if not answers:
            return notices
        if self._awaiting is None:
            self._answers_due = max(0, self._answers_due - len(answers))
            return notices
        self._rx += answers
        if len(self._rx) < self._answers_due + len(STATUS_KINDS):
            return notices
        try:
            status = parse_status(bytes(self._rx[-len(STATUS_KINDS) :]))
        except StatusFormatError:
            return notices  # noise: the answer may still come before the deadline
        return notices + self._status(status, now)

    def port_failed(self, reason: str, now: float) -> list[Notice]:
        """The port is gone (unplugged): the job in progress fails, the printer is not answering."""
        out: list[Notice] = []
        if self.job is not None:
            job, reported = self._end_job()
            if not reported:
                out.append(self._fail(job, f"port_error: {reason}"))
        return out + self._status(NO_RESPONSE, now)

    def tick(self, now: float) -> list[Notice]:
        if self._awaiting is not None and now >= self._awaiting:
            # Fewer answers than due (a printer that ignores requests inside an image): the
            # last four bytes may still be the answer to ours.
            return self._status(answer_of(bytes(self._rx)), now)
        if self._confirming() and self._confirm_by is not None and now >= self._confirm_by:
            job, _ = self._end_job()
            return [self._fail(job, NOT_CONFIRMED)]
        if self._bytes_left() and now - self._progress_at >= self.stall_s:
            job, reported = self._end_job()
            return [*([] if reported else [self._fail(job, "write_timeout")]), *self._ask_later(now)]
        return []

    def next_wakeup(self, now: float) -> float:
        """When tick/next_action may next have something to do (for a sleeping loop)."""
        if self._awaiting is not None:
            return self._awaiting
        if self._confirming():  # nothing to send: the answer, or the next poll
            return min(self._next_poll, self._confirm_by if self._confirm_by is not None else now)
        if self.job is not None or self.queue:
            return now
        return self._next_poll

    # -- inside ----------------------------------------------------------------------------
    def _start(self, job: PrintJob, now: float) -> None:
        self.job = job
        self.sent = 0
        self._reported = False
        self._tail = b""
        self._drawn = bytearray()
        self._pieces = None
        if isinstance(job.data, bytes | bytearray):  # drawn already
            self._drawn += job.data
            self._answers_due += count_status_requests(job.data)
            self._drawn += self._completion_request()
        else:
            self._pieces = iter(job.data)
        self._progress_at = now

    def _bytes_left(self) -> bool:
        """The current job has bytes still to draw or to send."""
        return self.job is not None and (bool(self._drawn) or self._pieces is not None)

    def _end_job(self) -> tuple[PrintJob, bool]:
        """Drop the current job (whatever is left of it is never sent); it and whether it has
        been reported failed already."""
        assert self.job is not None
        job, reported = self.job, self._reported
        self.job, self._pieces, self._reported = None, None, False
        self._drawn.clear()
        self._expect = self._confirm_by = None
        return job, reported

    # -- printed means printed -------------------------------------------------------------
    def _completion_request(self) -> bytes:
        """The request that ends a job for this printer's model (docs/printing.md)."""
        if self.completion == "process-id":
            self._ids = (self._ids + 1) % PROCESS_IDS
            self._expect = process_id(self._ids)
            return process_id_request(self._expect)
        return PAPER_SENSOR_REQUEST if self.completion == "status" else b""

    def _confirming(self) -> bool:
        """Every byte of the job (its completion request last) is taken; its answer is awaited."""
        return self.job is not None and self.completion != "none" and not self._reported and not self._bytes_left()

    def _completion_answer(self, data: bytes, now: float) -> list[Notice]:
        """Bytes that are not DLE EOT answers: the current job's completion answer ends it. A
        late answer, to a job failed already (its printer was fixed and finished it), is
        dropped: that ticket stays unprinted (the same number and code, whichever copy is used)."""
        if self.completion == "process-id":
            ids, self._crx = find_process_ids(self._crx + data)
            if self._confirming() and self._expect in ids:
                return self._confirmed()
            return []
        out: list[Notice] = []
        for b in data if self.completion == "status" else b"":
            if not is_paper_sensor_byte(b):
                continue
            if self._owed:  # GS r has no ID: the answers of failed jobs' requests come first
                self._owed -= 1
            elif self._confirming():
                job, _ = self._end_job()
                out.append(self._fail(job, "paper_out") if sensor_paper_out(b) else self._done(job))
        return out

    def _confirmed(self) -> list[Notice]:
        job, _ = self._end_job()
        return [self._done(job)]

    def _done(self, job: PrintJob) -> JobDone:
        self.printed += 1
        return JobDone(self.printer, job)

    def _stopped_while_confirming(self, reason: str) -> list[Notice]:
        if self.completion == "status":
            self._owed += 1  # its GS r is held in the printer: answered when it is fixed
        job, _ = self._end_job()
        return [self._fail(job, reason)]

    def _ask(self, now: float) -> AskStatus:
        self._awaiting = now + self.status_timeout_s
        self._rx.clear()
        return AskStatus()

    def _ask_later(self, now: float) -> list[Notice]:
        self._next_poll = now  # ask at once: the stall says something is wrong
        return []

    def _problem(self) -> str:
        return (self.status.problem if self.status else None) or "unknown"

    def _fail(self, job: PrintJob, reason: str) -> JobFailed:
        self.failed += 1
        return JobFailed(self.printer, job, reason)

    def _status(self, status: PrinterStatus, now: float) -> list[Notice]:
        self._awaiting = None
        self._answers_due = 0
        self._rx.clear()
        old, self.status = self.status, status
        out: list[Notice] = [StatusChanged(self.printer, old, status)] if old != status else []
        if self._confirming() and status.can_print:
            pass  # its tail is still printing: the completion answer says when it is done
        elif not status.can_print and self._confirming():
            out += self._stopped_while_confirming(status.problem or "unknown")  # what came out is incomplete
        elif self.job is not None and not self._bytes_left():
            job, reported = self._end_job()
            if reported:
                pass  # its drawing failed part way: it ended then
            elif status.can_print:
                out.append(self._done(job))
            else:  # it stopped while printing: the paper that came out may be incomplete
                out.append(self._fail(job, status.problem or "unknown"))
        self._next_poll = now + (self.confirm_poll_s if self._confirming() else self.poll_s)
        if not status.can_print:
            while self.queue:  # never sent: they fail now rather than print half a day later
                out.append(self._fail(self.queue.popleft(), status.problem or "unknown"))
        return out


class PrinterLine:
    """A PrinterMachine on its port (thin I/O). A port that cannot be opened, or is lost, counts
    as a printer not answering and is opened again after REOPEN_S, backing off to REOPEN_MAX_S."""

    def __init__(
        self,
        profile: PrinterProfile,
        opener: Callable[[str], Any] = open_printer,
        machine: PrinterMachine | None = None,
    ) -> None:
        self.profile = profile
        self.opener = opener
        completion = profile.printer_model.completion
        self.machine = machine or PrinterMachine(profile.id, completion=completion)
        self.port: Any = None
        self._reopen_at = 0.0
        self._reopen_wait = REOPEN_S  # the next wait after a failure: doubles while they repeat
        self.bytes_out = 0
        self.first_byte_at: float | None = None  # the clock's time of the last job's first byte
        self._last_error: str | None = None

    def open(self, now: float) -> list[Notice]:
        try:
            self.port = self.opener(self.profile.port)
        except PrinterPortError as exc:
            self.port = None
            return self._port_error(exc, now)
        if self._last_error is not None:
            _log.info("printer %s: port %s open again", self.profile.id, self.profile.port)
            self._last_error = None
        return []

    def _port_error(self, exc: PrinterPortError, now: float) -> list[Notice]:
        self._reopen_at = now + self._reopen_wait
        self._reopen_wait = min(REOPEN_MAX_S, 2 * self._reopen_wait)
        if str(exc) != self._last_error:  # once per reason, not at every try while it stays out
            _log.warning(
                "printer %s: %s; trying again in %g s, then less often (every %g s at most)",
                self.profile.id,
                exc,
                self._reopen_at - now,
                REOPEN_MAX_S,
            )
            self._last_error = str(exc)
        return self.machine.port_failed(str(exc), now)

    def _read(self) -> bytes:
        answer = read_available(self.port)
        if answer:  # the printer itself answered (not only its port opened): back to quick retries
            self._reopen_wait = REOPEN_S
        return answer

    def close(self) -> None:
        if self.port is not None:
            self.port.close()
            self.port = None

    def step(self, now: float) -> list[Notice]:
        """Everything that can be done now without waiting, at most MAX_CHUNKS_PER_STEP writes."""
        if self.port is None:
            if now < self._reopen_at:
                return self.machine.tick(now)
            notices = self.open(now)
            if self.port is None:
                return notices
        else:
            notices = []
        machine = self.machine
        try:
            notices += machine.received(self._read(), now)
            notices += machine.tick(now)
            writes = draws = 0
            while writes < MAX_CHUNKS_PER_STEP:
                action = machine.next_action(now)
                if action is None:
                    break
                if isinstance(action, DrawPiece):
                    if draws == MAX_DRAWS_PER_STEP:
                        break  # the next turn draws on: the bus keeps its rhythm
                    draws += 1
                    notices += machine.draw(now)
                    continue
                writes += 1
                if isinstance(action, AskStatus):
                    if write_some(self.port, FULL_REQUEST) != len(FULL_REQUEST):
                        break  # the deadline will say it did not answer
                    notices += machine.received(self._read(), now)
                    continue
                first = machine.sent == 0
                n = write_some(self.port, action.data)
                if n and first:
                    self.first_byte_at = now
                self.bytes_out += n
                machine.wrote(n, now)
                if n < len(action.data):
                    break  # its buffer is full: the rest next turn
        except PrinterPortError as exc:
            self.close()
            notices += self._port_error(exc, now)
        return notices


@dataclass
class _Offer:
    service: str
    ticket: str
    until: float


@dataclass
class Printing:
    """The office's printers, the dispensers beside them, and the journal records of failures
    and reprints. `execute` stores an office command (the gateway's journal); `show` hands a
    dispenser (by address) what it must show and allow."""

    config: OfficeConfig
    execute: Callable[[m.Command], m.Decision]
    show: Callable[[int, SetPrinter], None]
    opener: Callable[[str], Any] = open_printer
    lines: dict[str, PrinterLine] = field(init=False)
    dispensers: dict[int, str] = field(init=False)  # address -> printer id
    offers: dict[int, _Offer] = field(init=False, default_factory=dict)
    _shown: dict[int, SetPrinter] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.lines = {p.id: PrinterLine(p, self.opener) for p in self.config.printers}
        self.dispensers = {}
        for d in self.config.devices:
            if d.kind == "dispenser" and d.printer is not None:
                if self.dispensers.get(d.addr, d.printer) != d.printer:
                    _log.warning("dispensers at address %d on two buses use different printers", d.addr)
                self.dispensers[d.addr] = d.printer

    def start(self, now: float) -> None:
        for line in self.lines.values():
            self._notices(line.open(now), now)
            self._warm_up(line.profile)

    def _warm_up(self, profile: PrinterProfile) -> None:
        """Draw one ticket and throw it away: fonts load and glyphs are cached now, not while
        the first resident of the day waits for paper."""
        if not self.config.services:
            return
        service = self.config.services[0]
        at = datetime(2027, 1, 4, 10, 0, tzinfo=self.config.tz)
        ready = m.TicketReady(
            service.ticket_id(service.first_number),
            service.id,
            service.first_number,
            1,
            0,
            WaitRange.of_minutes(0, 0),
            at,
            "A" * 32,
        )
        try:
            ticket_bytes(ticket_content(self.config, ready), profile)
        except Exception:  # the real ticket will say what is wrong, and fail alone
            _log.exception("printer %s: a sample ticket cannot be drawn", profile.id)

    def close(self) -> None:
        for line in self.lines.values():
            line.close()

    def printer_for(self, addr: int | None, service: str | None = None) -> str | None:
        """The printer of dispenser `addr`; for staff (None), the printer of a dispenser that
        offers `service`, else the first configured."""
        if addr is not None:
            return self.dispensers.get(addr)
        for d in self.config.devices:
            if d.kind == "dispenser" and d.printer and service in d.services:
                return d.printer
        return self.config.printers[0].id if self.config.printers else None

    # -- jobs ----------------------------------------------------------------------------------
    def submit(self, ready: m.TicketReady, addr: int | None, now: float, printer: str | None = None) -> str | None:
        """Print `ready` (stored already) for dispenser `addr` (None: staff) on `printer` (default:
        printer_for). Its first bytes go out now when the printer is ready. The printer id used,
        or None when there is none (no [[printers]] for it)."""
        pid = printer or self.printer_for(addr, ready.service)
        if pid is None or pid not in self.lines:
            return None
        if addr is not None and not ready.reprint and self.offers.pop(addr, None) is not None:
            # Someone took a new ticket there: the dispenser ended the offer itself (DeviceLink).
            self._shown[addr] = SetPrinter()
        line = self.lines[pid]
        try:
            # Drawn piece by piece as the printer takes it (PrinterMachine.draw), top first.
            pieces = ticket_chunks(ticket_content(self.config, ready), line.profile)
        except Exception as exc:  # a ticket that cannot be drawn must not stop the gateway
            _log.exception("ticket %s cannot be rendered", ready.ticket)
            failed: list[Notice] = [JobFailed(pid, PrintJob(ready.ticket, ready.service, b"", addr), f"render: {exc}")]
            self._notices(failed, now)
            return pid
        job = PrintJob(ready.ticket, ready.service, pieces, addr, ready.reprint)
        self._notices(line.machine.submit(job, now), now)
        self._notices(line.step(now), now)
        return pid

    def step(self, now: float) -> None:
        for line in self.lines.values():
            self._notices(line.step(now), now)
        for addr in [a for a, o in self.offers.items() if now >= o.until]:
            del self.offers[addr]
            self._refresh(addr)

    def next_wakeup(self, now: float) -> float:
        times = [line.machine.next_wakeup(now) for line in self.lines.values()]
        times += [o.until for o in self.offers.values()]
        return min(times) if times else now + STATUS_POLL_S

    # -- consequences ----------------------------------------------------------------------------
    def _notices(self, notices: list[Notice], now: float) -> None:
        for n in notices:
            if isinstance(n, StatusChanged):
                self._status_changed(n)
            elif isinstance(n, JobDone):
                _log.info("printer %s: %s printed%s", n.printer, n.job.ticket, " (reprint)" if n.job.reprint else "")
                if n.job.reprint:
                    self._record(m.RecordReprint(n.job.ticket, n.printer))
                offer = self.offers.get(n.job.addr) if n.job.addr is not None else None
                if n.job.addr is not None and offer is not None and offer.ticket == n.job.ticket:
                    del self.offers[n.job.addr]
                    self._refresh(n.job.addr)
            elif isinstance(n, JobFailed):
                _log.warning("printer %s: %s not printed: %s", n.printer, n.job.ticket, n.reason)
                if n.reason == NOT_CONFIRMED:
                    self._hint_not_confirmed(n.printer)
                self._record(m.RecordPrintFailure(n.job.ticket, n.printer, n.reason))
                if n.job.addr is not None:
                    self.offers[n.job.addr] = _Offer(n.job.service, n.job.ticket, now + REPRINT_OFFER_S)
                    self._refresh(n.job.addr)

    def _hint_not_confirmed(self, printer: str) -> None:
        """A printer that never answers its model's completion request is likely another model."""
        profile = self.lines[printer].profile
        model = profile.printer_model
        _log.warning(
            "printer %s: no answer to its completion request (model %s: %s) within %g s; if it printed, "
            "it is not that model: `counterfloor printer probe %s` (with the gateway stopped) asks it",
            printer,
            model.name,
            model.completion,
            self.lines[printer].machine.confirm_timeout_s,
            profile.port,
        )

    def _status_changed(self, n: StatusChanged) -> None:
        new, old = n.new, n.old
        if new.paper_near_end and not (old and old.paper_near_end):
            _log.warning("printer %s: paper near end: change the roll soon", n.printer)
        if new.can_print != (old.can_print if old else True):
            level = logging.INFO if new.can_print else logging.WARNING
            _log.log(level, "printer %s: %s", n.printer, new.describe())
        for addr, pid in self.dispensers.items():
            if pid == n.printer:
                self._refresh(addr)

    def _record(self, command: m.Command) -> None:
        try:
            self.execute(command)
        except Exception as exc:  # a ticket gone with the day, a journal error: printing goes on
            _log.warning("cannot record %r: %s", command, exc)

    def view(self, addr: int) -> SetPrinter:
        """What dispenser `addr` must show and allow now."""
        line = self.lines.get(self.dispensers.get(addr, ""))
        if line is not None and line.machine.state is PrinterState.STOPPED:
            unavailable, ask = both("tickets_unavailable"), both("ask_staff")
            return SetPrinter(panel_lines(unavailable[0], ask[0], unavailable[1], ask[1]), stopped=True)
        offer = self.offers.get(addr)
        if offer is not None:
            failed, again = both("print_failed"), both("print_reprint_press")
            lines = panel_lines(failed[0], again[0], failed[1], again[1])
            return SetPrinter(lines, reprint=(offer.service, offer.ticket))
        return SetPrinter()

    def _refresh(self, addr: int) -> None:
        view = self.view(addr)
        if self._shown.get(addr, SetPrinter()) != view:
            self._shown[addr] = view
            self.show(addr, view)

    # -- device state (the MQTT issue publishes this) -----------------------------------------
    def state_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for pid, line in self.lines.items():
            status = line.machine.status
            out[pid] = {
                "state": line.machine.state.value,
                "status": status.as_json() if status else None,
                "port": line.profile.port,
                "dispensers": sorted(a for a, p in self.dispensers.items() if p == pid),
                "printed": line.machine.printed,
                "failed": line.machine.failed,
            }
        return out

    def describe(self) -> str:
        """The printers as a table for `counterfloor printer status`."""
        lines = [f"{'printer':<12} {'state':<9} {'status':<24} dispensers"]
        for pid, line in self.lines.items():
            status = line.machine.status
            shown = status.describe() if status else "—"
            dispensers = ",".join(str(a) for a, p in sorted(self.dispensers.items()) if p == pid) or "—"
            lines.append(f"{pid:<12} {line.machine.state.value:<9} {shown:<24} {dispensers}")
        return "\n".join(lines) + "\n"

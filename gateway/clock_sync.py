"""Whether the gateway may trust its wall clock enough to open a business day on it.

A Raspberry Pi has no battery clock: it boots with the time it was shut down (`fake-hwclock`) or
with 1970 until NTP answers, and a floor opened on that clock numbers its tickets on the wrong
business day. So a gateway serves no day until its clock is trusted (docs/operations.md, "The
clock"), which it is when

- the system clock is synchronised: the kernel's maximum error (adjtimex(2), read only) is under
  its 16 s ceiling, as systemd's timedatectl reads it (chronyd without `rtcsync` keeps STA_UNSYNC
  set, so that bit alone would call a good clock unsynchronised), or systemd-timesyncd's flag file
  `/run/systemd/timesync/synchronized` exists (made at its first sync since boot);
- `[gateway] clock = "rtc"`: a battery RTC set the clock at boot (unless it reads before the
  journal's last event: a flat battery);
- staff confirmed the time (`counterfloor office confirm-time`, or a counter pad's call key);
- or the gateway runs on a simulated wall clock (tests, the demo).

Trust, once gained, lasts until the machine restarts (kept in the journal's meta under the
kernel's boot id, so a gateway restarted during the day does not ask again): only a reboot makes
the clock suspect, and a day being served never stops because NTP went away.

Pure but for its readers of the system (`read_kernel_clock`, `system_sync`, `read_boot_id`);
the gateway (gateway.service) asks, records and shows.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from pathlib import Path

from office.calendar import AT_TOLERANCE
from office.config import CLOCK_SOURCES

# The kernel's NTP_PHASE_LIMIT: maxerror grows 500 µs a second after the last NTP update and,
# reaching 16 s, is clamped there with STA_UNSYNC set; it is there from boot until a first sync.
MAXERROR_LIMIT_US = 16_000_000
STA_UNSYNC = 0x0040
TIME_ERROR = 5  # adjtimex's answer for a clock "not synchronized to a reliable server"
TIMESYNCD_FLAG = Path("/run/systemd/timesync/synchronized")
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
META_KEY = "clock_trusted"  # the journal's meta: the trust of the current boot (JSON)
CHECK_EVERY_S = 1.0  # how often a waiting gateway asks again: a syscall and a stat
# How far a clock may read before the journal's last event and still be right: a step back of
# NTP's is seconds; a flat RTC battery or fake-hwclock's saved time is hours to decades.
BEHIND_TOLERANCE = AT_TOLERANCE
_HM = re.compile(r"([01]?[0-9]|2[0-3]):([0-5][0-9])")  # what staff type: 8:20, 08:20


# -- the kernel's view ---------------------------------------------------------------------------
class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _Timex(ctypes.Structure):
    """glibc's `struct timex` of the `adjtimex` symbol (longs: 4 bytes on armhf, 8 on arm64), with
    the reserved ints at its end and room to spare."""

    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time", _Timeval),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_reserved", ctypes.c_int * 11),
        ("_spare", ctypes.c_byte * 64),  # never written by a correct libc; guards a layout mistake
    ]


@dataclass(frozen=True, slots=True)
class KernelClock:
    """adjtimex(2)'s answer with `modes` 0 (a read: no privilege needed, nothing changed)."""

    state: int  # its return value: TIME_OK (0) … TIME_ERROR (5)
    status: int  # STA_* bits
    maxerror_us: int
    esterror_us: int

    @property
    def synchronised(self) -> bool:
        """systemd's rule (time-util.c, ntp_synced): the maximum error under the kernel's limit.
        Not STA_UNSYNC: chronyd without rtcsync sets it on a synchronised clock, to keep the
        kernel from writing the RTC."""
        return 0 <= self.maxerror_us < MAXERROR_LIMIT_US

    def describe(self) -> str:
        flag = ", STA_UNSYNC" if self.status & STA_UNSYNC else ""
        return f"kernel: max error {self.maxerror_us / 1e6:.3g} s{flag}"


def read_kernel_clock() -> KernelClock | None:
    """The kernel's view of the wall clock, or None where there is none (not Linux, no libc)."""
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        adjtimex = libc.adjtimex
    except (OSError, AttributeError):
        return None
    tx = _Timex()  # modes 0: read only
    state = int(adjtimex(ctypes.byref(tx)))
    if state < 0:
        return None
    return KernelClock(state, int(tx.status), int(tx.maxerror), int(tx.esterror))


@dataclass(frozen=True, slots=True)
class Sync:
    """Is the system clock synchronised, and how it is known (or why not), for the logs."""

    synchronised: bool
    how: str


SIMULATED = Sync(True, "a simulated wall clock")


def system_sync(kernel: Callable[[], KernelClock | None] = read_kernel_clock, flag: Path = TIMESYNCD_FLAG) -> Sync:
    """The system clock's sync as the kernel and systemd-timesyncd tell it: synchronised if either
    says so (timesyncd's flag stays from its first sync until reboot; the kernel's maxerror grows
    to its limit about nine hours after the last NTP update)."""
    k = kernel()
    if k is not None and k.synchronised:
        return Sync(True, f"synchronised ({k.describe()})")
    if flag.exists():
        return Sync(True, f"synchronised (systemd-timesyncd: {flag})")
    kernel_said = k.describe() if k is not None else "no kernel NTP status"
    return Sync(False, f"not synchronised ({kernel_said}; no {flag})")


def read_boot_id(path: Path = BOOT_ID) -> str | None:
    """This boot of the machine (Linux's random boot id), or None where there is none."""
    try:
        return path.read_text(encoding="ascii").strip() or None
    except OSError:
        return None


# -- the decision ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Trust:
    """Why the clock is trusted: `by` one of ntp, rtc, staff, simulated; `detail` for people."""

    by: str
    detail: str


def behind_problem(wall: datetime, last_ts: datetime | None, tz: tzinfo) -> str | None:
    """Why `wall` cannot be right because it reads before the journal's last event, or None."""
    if last_ts is None or wall >= last_ts - BEHIND_TOLERANCE:
        return None
    return (
        f"the clock reads {wall.astimezone(tz):%Y-%m-%d %H:%M}, before the journal's last event "
        f"({last_ts.astimezone(tz):%Y-%m-%d %H:%M}): it is wrong; set it (sudo date -s 'YYYY-MM-DD HH:MM')"
    )


def stated_problem(stated: str, wall: datetime, tz: tzinfo) -> str | None:
    """Why the time staff read (`HH:MM`, or a date and time `YYYY-MM-DD HH:MM`, local) is not
    the gateway's `wall` within AT_TOLERANCE, or None. ValueError for a text that is neither."""
    local = wall.astimezone(tz)
    if (hm := _HM.fullmatch(stated.strip())) is not None:
        told = local.replace(hour=int(hm[1]), minute=int(hm[2]), second=0, microsecond=0)
        off = abs((told - local).total_seconds())
        off = min(off, 86_400 - off)  # 23:59 stated at 00:00:30 is a minute off, not a day
    else:
        moment = datetime.fromisoformat(stated.strip())  # ValueError: neither
        moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=tz)
        off = abs((moment - wall).total_seconds())
    if off <= AT_TOLERANCE.total_seconds():
        return None
    return (
        f"the gateway's clock says {local:%Y-%m-%d %H:%M}, not {stated}: set the clock "
        f"(sudo date -s 'YYYY-MM-DD HH:MM'), then confirm it"
    )


class ClockGate:
    """The trust in the wall clock of one gateway process (see the module docstring). `mode` is
    `[gateway] clock`; `sync` tells whether the system clock is synchronised (SIMULATED for a
    simulated wall clock); `boot` names this boot (None: trust is not kept across restarts)."""

    def __init__(self, mode: str, sync: Callable[[], Sync], boot: str | None) -> None:
        if mode not in CLOCK_SOURCES:
            raise ValueError(f"clock mode must be one of {CLOCK_SOURCES}, got {mode!r}")
        self.mode = mode
        self.sync = sync
        self.boot = boot
        self.trust: Trust | None = None
        self.reason = "not checked yet"
        self._next_check: float | None = None

    @property
    def waiting(self) -> bool:
        """No day may be served: the clock is not trusted (yet)."""
        return self.trust is None

    def restore(self, stored: str | None) -> None:
        """Trust kept in the journal's meta by an earlier process of this same boot."""
        if self.boot is None or not stored or self.trust is not None:
            return
        try:
            data = json.loads(stored)
            if data.get("boot") == self.boot:
                self.trust = Trust(str(data["by"]), f"{data['detail']} (earlier in this boot)")
        except (ValueError, KeyError, TypeError, AttributeError):
            return  # unreadable: as if there were none, the clock is checked afresh

    def stored(self, trust: Trust) -> str | None:
        """The journal meta's value that keeps `trust` for the rest of this boot, or None when
        there is nothing to keep (no boot id; an RTC or a simulated clock: trusted anyway)."""
        if self.boot is None or trust.by not in ("ntp", "staff"):
            return None
        return json.dumps({"boot": self.boot, "by": trust.by, "detail": trust.detail})

    def check(self, mono: float, wall: datetime, last_ts: datetime | None, tz: tzinfo) -> Trust | None:
        """Ask again (at most every CHECK_EVERY_S of `mono`) while waiting: the Trust gained now,
        else None (still waiting, or trusted already)."""
        if self.trust is not None or (self._next_check is not None and mono < self._next_check):
            return None
        self._next_check = mono + CHECK_EVERY_S
        sync = self.sync()
        if sync.synchronised:
            self.trust = Trust("simulated" if sync is SIMULATED else "ntp", sync.how)
        elif self.mode == "rtc":
            if (behind := behind_problem(wall, last_ts, tz)) is None:
                self.trust = Trust("rtc", 'a battery RTC ([gateway] clock = "rtc")')
            else:
                self.reason = f"RTC: {behind} (its battery?)"
        else:
            self.reason = sync.how
        return self.trust

    def confirm_problem(self, wall: datetime, last_ts: datetime | None, tz: tzinfo, stated: str | None) -> str | None:
        """Why staff may not confirm the clock now, or None. ValueError for a bad `stated`."""
        if stated is not None and (problem := stated_problem(stated, wall, tz)) is not None:
            return problem
        return behind_problem(wall, last_ts, tz)

    def view(self, wall: datetime, tz: tzinfo) -> dict[str, object]:
        """The clock as the control socket and `office show` tell it."""
        return {
            "trusted": self.trust is not None,
            "by": self.trust.by if self.trust else None,
            "detail": self.trust.detail if self.trust else self.reason,
            "mode": self.mode,
            "now": wall.astimezone(tz).isoformat(timespec="seconds"),
        }


def confirm_hint(wall: datetime, tz: tzinfo) -> str:
    """How staff confirm the clock, naming the time it shows."""
    local = wall.astimezone(tz)
    return (
        f"the gateway's clock says {local:%a %Y-%m-%d %H:%M} ({tz}); if that is right, confirm it: "
        f"counterfloor office confirm-time --time {local:%H:%M} (or the call key of a counter pad, "
        "which shows the time)"
    )


def waiting_lines(gate: ClockGate, wall: datetime, tz: tzinfo) -> str:
    """`office show`'s lines while the day waits for the clock ("" when it does not)."""
    if not gate.waiting:
        return ""
    return f"clock NOT TRUSTED: no business day opens until it is ({gate.reason})\n  {confirm_hint(wall, tz)}\n\n"


def until_next_minute(wall: datetime) -> float:
    """Seconds until the wall clock's next minute (what the pads show changes then)."""
    nxt = wall.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return max((nxt - wall).total_seconds(), 0.0)

"""The C heap of a process that runs for months (the gateway, each central worker): glibc's malloc
told to give memory back, at the start, before the service starts its threads (`tune_malloc`).

Python takes the memory of its small objects in arenas of its own; through malloc go the larger
ones (a day's lists and dicts, JSON and MQTT payloads, the predictors' arrays) and SQLite's page
caches. Two of glibc's defaults let a long-running process's heap creep up day after day:

- **Arenas.** A thread that allocates while another holds the main arena gets an arena of its own,
  up to eight per core, and what is freed in an arena stays there for that arena's later
  allocations: each of a service's threads (the loop, paho's network thread, the web server's,
  the trainer's, the forecast's, the sign and audio workers) keeps free memory of its own that the
  others never reuse. Limited to ARENAS, the threads share them, with locking that costs nothing
  at these rates.
- **The mmap threshold.** A block of 128 KiB or more is mapped on its own and unmapped when freed,
  but freeing one raises the threshold to its size (up to 32 MB), so from then on blocks that size
  come from the heap instead: the predictor's arrays (hundreds of kB, replaced every day), a
  day's large lists. A heap gives back nothing below a block still in use, and the day's
  long-lived blocks settle among them. A fixed MMAP_THRESHOLD (which ends the adjusting) keeps
  them mapped apart, and back to the system once freed.

The soak (bench/soak.py, its month, everything else the same) measured it: resident memory +6.5 %
from day 3 to day 30 with the arenas limited, +3.9 % with the threshold fixed too; ten days with
neither, +7.0 %, glibc's free memory inside its arenas going from 6.9 to 10.0 MB (3.8 to 4.7 MB
with two arenas). MALLOC_ARENA_MAX and MALLOC_MMAP_THRESHOLD_ in the environment do the same
before the first allocation; an operator's value there stands.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

ARENAS = 2
MMAP_THRESHOLD = 128 * 1024  # glibc's own starting value, kept
M_MMAP_THRESHOLD = -3  # glibc's malloc.h
M_ARENA_MAX = -8


def tune_malloc() -> list[str]:
    """Limit glibc's arenas to ARENAS and fix its mmap threshold at MMAP_THRESHOLD, each unless
    the environment sets it; the settings made (none where the C library is not glibc)."""
    if not sys.platform.startswith("linux"):
        return []
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 — glibc's: musl's mallopt does nothing
    except (OSError, AttributeError):
        return []
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    made = []
    for env, param, value in (
        ("MALLOC_ARENA_MAX", M_ARENA_MAX, ARENAS),
        ("MALLOC_MMAP_THRESHOLD_", M_MMAP_THRESHOLD, MMAP_THRESHOLD),
    ):
        if not os.environ.get(env) and mallopt(param, value):
            made.append(f"{env}={value}")
    return made

"""A/B application slots and what boot decides. The flash holds the loader (boot.py, main.py,
slots.py, board.py, config.json) at its root and two application slots, a/ and b/, each a
complete copy of the application modules (protocol, device, display, config and the device
kinds). The file `slot` names the active one. load() imports the entry module from the active
slot; if that import fails it tries the other slot, makes it active (so the next boot does not
try the broken one first) and says so. Without a `slot` file the modules are imported from the
path as it is (the Unix port in tests).

boot() (called from boot.py, or from main.py if boot.py did not run) works out the reset cause —
a FW_COMMIT leaves the marker file `fw_committed`, which makes it RESET_FW_UPDATE — and starts the
watchdog. It touches no pins besides the watchdog."""

import sys

import board

SLOTS = ("a", "b")
MARKER = "slot"
FW_COMMITTED = "fw_committed"
RESET_FW_UPDATE = 5  # protocol.RESET_FW_UPDATE

reset_cause = None
wdt = None
active = None  # the slot the application was imported from, or None
fell_back = False


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


def boot(watchdog_ms=5000, root=None):
    global reset_cause, wdt
    if reset_cause is not None:
        return reset_cause
    import os

    root = board.flash_dir() if root is None else root
    marker = board.path_join(root, FW_COMMITTED)
    if _read(marker) is not None:
        reset_cause = RESET_FW_UPDATE
        os.remove(marker)
    else:
        reset_cause = board.reset_cause()
    wdt = board.watchdog(watchdog_ms)
    print("boot: reset_cause=%d" % reset_cause)
    return reset_cause


def _try(slot_dir, name):
    before = set(sys.modules)
    sys.path.insert(0, slot_dir)
    try:
        return __import__(name)
    except Exception as e:
        print("slots: %s: import %s failed: %r" % (slot_dir, name, e))
        # Forget what the failed attempt imported, so the other slot's copies are used.
        for m in list(sys.modules):
            if m not in before:
                del sys.modules[m]
        sys.path.remove(slot_dir)
        return None


def load(name, root=None):
    """Import module `name` from the active slot, falling back to the other one. Returns the
    module; raises ImportError if neither slot has a working copy."""
    global active, fell_back
    root = board.flash_dir() if root is None else root
    marker = board.path_join(root, MARKER)
    first = _read(marker)
    if first is None:
        active = None
        return __import__(name)
    if first not in SLOTS:
        print("slots: %s names no slot (%r): using a" % (marker, first))
        first = "a"
    for slot in (first, SLOTS[1 - SLOTS.index(first)]):
        module = _try(board.path_join(root, slot), name)
        if module is not None:
            active = slot
            if slot != first:
                fell_back = True
                print("slots: fell back to slot %s" % slot)
                _write(marker, slot)
            return module
    raise ImportError("no slot has a working %s" % name)

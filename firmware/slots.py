"""A/B application slots and what boot decides. The flash holds the loader (boot.py, main.py,
slots.py, board.py, config.json) at its root and two application slots, a/ and b/, each a
complete copy of the application modules (protocol, device, display, config and the device
kinds). The file `slot` names the active one. load() imports the entry module from the active
slot; if that import fails it tries the other slot, makes it active (so the next boot does not
try the broken one first) and says so. The slot's `version` file (written by FW_COMMIT) becomes
`version`, what HELLO reports. Without a `slot` file the modules are imported from the
path as it is (the Unix port in tests).

Rollback: FW_COMMIT leaves the new slot on trial: the marker says "SLOT BOOTS" ("b 0") rather
than "b". load() counts each boot on trial before the slot's code runs (a crash counts too); a
slot still on trial after TRIAL_BOOTS boots never proved healthy (the device restarts itself when
it is not healthy within fw_update.HEALTH_MS, and the watchdog restarts a hung one), so the next
boot goes back to the other slot by itself. start() hands a boot on trial to fw_update.boot,
which writes the bare slot name back once the device is healthy. (In the marker, not a file of
its own: every name slots.py uses stays interned on a running board after it is dropped.)

boot() (called from boot.py, or from main.py if boot.py did not run) works out the reset cause —
a FW_COMMIT leaves the marker file `fw_committed` naming the slot, which makes it RESET_FW_UPDATE;
RESTART leaves it empty, RESET_SOFT (a Pico's own cause after machine.reset says watchdog) — and
starts the watchdog. It touches no pins besides the watchdog.

start(argv) is main.py's boot: the command line (Unix port) and config.json, boot(), the kind's
module from the active slot, the configuration check, the bus UART and the device. main.py then
drops this module and config from sys.modules: a running board holds neither (docs/firmware.md,
"Memory")."""

import sys

from micropython import const

import board

# Names and values are literals or private constants here, not module attributes: every
# module-level name is an interned string, which a board keeps after this module is dropped.
_RESET_FW_UPDATE = const(5)  # protocol.RESET_FW_UPDATE
_RESET_SOFT = const(4)  # protocol.RESET_SOFT
_TRIAL_BOOTS = const(3)  # boots a committed slot gets to prove healthy before the fallback

reset_cause = None
wdt = None
active = None  # the slot the application was imported from, or None
fell_back = False
version = None  # (major, minor, patch) from the active slot's `version` file (FW_COMMIT writes it)


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def boot(watchdog_ms=5000, root=None):
    global reset_cause, wdt
    if reset_cause is not None:
        return reset_cause
    import os

    root = board.flash_dir() if root is None else root
    marker = board.path_join(root, "fw_committed")
    committed = _read(marker)
    if committed is not None:
        reset_cause = _RESET_FW_UPDATE if committed else _RESET_SOFT
        os.remove(marker)
    else:
        reset_cause = board.reset_cause()
    wdt = board.watchdog(watchdog_ms)
    print("boot: reset_cause=%d" % reset_cause)
    return reset_cause


def boot_number(root=None):
    """This boot's number, for HELLO: the one kept on flash plus one, written back (aside, then
    renamed) before the board says anything, so no two boots of a board share one (the gateway
    journals each press by boot number and event number: docs/protocol.md). A first boot starts
    from a random number, so a board new to a bus (a replacement) does not repeat the numbers of
    the one it replaces; a flash that cannot be written gives a random number every boot, since
    one not kept would come again. Never 0 (HELLO's "none")."""
    import os

    path = board.path_join(board.flash_dir() if root is None else root, "boot_number")
    try:
        n = (int(_read(path)) + 1) & 0xFFFFFFFF  # no file: int(None), a TypeError
    except (TypeError, ValueError):  # no number yet, or an unreadable one
        n = 0
    try:
        if not n:
            n = int.from_bytes(os.urandom(4), "big") or 1
        with open(path + ".tmp", "w") as f:
            f.write(str(n))
        os.rename(path + ".tmp", path)
    except OSError as e:
        n = int.from_bytes(os.urandom(4), "big") or 1
        print("boot: %s not kept (%r): boot number %d drawn at random" % (path, e, n))
    return n


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
    global active, fell_back, version
    root = board.flash_dir() if root is None else root
    marker = board.path_join(root, "slot")
    first = _read(marker)
    if first is None:
        active = None
        return __import__(name)
    # On trial ("b 1"): one boot more, or after TRIAL_BOOTS of them, the other slot. Written
    # before the slot's code runs, so a boot that crashes or hangs counts too.
    boots = first[2:]
    first = first[:1]
    if boots:
        try:
            boots = int(boots) + 1
        except ValueError:
            boots = _TRIAL_BOOTS + 1
        if boots > _TRIAL_BOOTS:
            print("slots: slot %s not healthy in %d boots: back to the other" % (first, _TRIAL_BOOTS))
            first = "b" if first == "a" else "a"
            boots = ""
        else:
            print("slots: slot %s on trial, boot %d" % (first, boots))
            boots = " " + str(boots)
        with open(marker, "w") as f:
            f.write(first + boots)
    if first not in ("a", "b"):
        print("slots: %s names no slot (%r): using a" % (marker, first))
        first = "a"
    for slot in (first, "b" if first == "a" else "a"):
        module = _try(board.path_join(root, slot), name)
        if module is not None:
            active = slot
            text = _read(board.path_join(board.path_join(root, slot), "version"))
            try:
                parts = tuple([int(x) for x in text.split(".")]) if text else ()
            except ValueError:
                parts = ()
            version = parts if len(parts) == 3 else None
            if slot != first:
                fell_back = True  # also ends a trial: the marker names the slot alone
                print("slots: fell back to slot %s" % slot)
                with open(marker, "w") as f:
                    f.write(slot)
            return module
    raise ImportError("no slot has a working %s" % name)


# --- main.py's boot (the running board drops this module afterwards)


def parse_args(argv):
    opts = {}
    i = 0
    while i < len(argv):
        key = argv[i]
        if key not in ("--serial", "--config", "--kind", "--addr", "--run-ms") or i + 1 >= len(argv):
            raise SystemExit(
                "usage: main.py [--serial PATH] [--config FILE] [--kind KIND] [--addr N] [--run-ms MS]\n"
                "bad argument: %r" % key
            )
        value = argv[i + 1]
        if key in ("--addr", "--run-ms"):
            try:
                value = int(value)
            except ValueError:
                raise SystemExit("%s must be an integer, got %r" % (key, value))
        opts[key[2:].replace("-", "_")] = value
        i += 2
    return opts


def read_config(opts):
    import json
    import os

    path = opts.get("config") or board.path_join(board.flash_dir(), "config.json")
    cfg = {}
    try:
        with open(path) as f:
            cfg = json.load(f)
    except OSError:
        if "config" in opts:
            raise SystemExit("%s: cannot be read" % path)
    except ValueError:
        raise SystemExit("%s: is not valid JSON" % path)
    if not isinstance(cfg, dict):
        raise SystemExit("%s: must be a JSON object" % path)
    for key in ("kind", "addr"):
        if key in opts:
            cfg[key] = opts[key]
    if "serial" not in opts and os.getenv("COUNTERFLOOR_SERIAL"):
        opts["serial"] = os.getenv("COUNTERFLOOR_SERIAL")
    return cfg, path


def start(argv):
    """Boot as main.py does: returns (device, clock, run_ms) with the device answering on the bus
    UART; the watchdog is `wdt`. Bad arguments or configuration end the program naming the
    problem."""
    opts = parse_args(argv)
    cfg, path = read_config(opts)
    cause = boot()
    kind = cfg.get("kind")
    if kind not in ("dispenser", "counter_pad", "call_display"):
        raise SystemExit("%s: kind must be dispenser, counter_pad or call_display, got %r" % (path, kind))
    module = load(kind)
    import config

    try:
        config.check(cfg, path)
    except config.ConfigError as e:
        raise SystemExit(str(e))
    clock = board.real_clock()
    import wiring  # the pins, the display and the device on them (dropped with slots after boot)

    dev = wiring.make(kind, module, cfg, board.bus_uart(opts.get("serial")), clock(), cause)
    dev.fw_active = active
    dev.boot = boot_number()
    dev.restart = board.reset
    if version:
        dev.VERSION = version
    if " " in (_read(board.path_join(board.flash_dir(), "slot")) or ""):  # on trial
        import fw_update

        fw_update.boot(dev)
    print("ready %s addr=%d slot=%s" % (kind, dev.addr, active))
    return dev, clock, opts.get("run_ms")

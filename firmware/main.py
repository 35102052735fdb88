"""The board's entry point: read config.json, load the device kind's module from the active slot
(slots.py), open the bus UART and run the asyncio loop (device.serve) forever.

On the Pico it runs at boot with no arguments. On the MicroPython Unix port (tests and the
hardware-in-the-loop run against the gateway over pty pairs):

    micropython firmware/main.py --serial /dev/pts/N --kind dispenser --addr 3 [--run-ms MS]
    micropython firmware/main.py --serial /dev/pts/N --config path/config.json

--serial falls back to $COUNTERFLOOR_SERIAL; the flash directory (config.json, saved display
content, slot marker) is $COUNTERFLOOR_FLASH or the working directory. --kind/--addr override the
file's values; without a config file they are enough. Prints "ready KIND addr=N" once listening.
"""

import sys

import board
import slots

USAGE = "usage: main.py [--serial PATH] [--config FILE] [--kind KIND] [--addr N] [--run-ms MS]"


def parse_args(argv):
    opts = {}
    i = 0
    while i < len(argv):
        key = argv[i]
        if key not in ("--serial", "--config", "--kind", "--addr", "--run-ms") or i + 1 >= len(argv):
            raise SystemExit(USAGE + "\nbad argument: %r" % key)
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


def main(argv=None):
    import asyncio

    opts = parse_args(sys.argv[1:] if argv is None else argv)
    cfg, path = read_config(opts)
    cause = slots.boot()
    kind = cfg.get("kind")
    if kind not in ("dispenser", "counter_pad", "call_display"):
        raise SystemExit("%s: kind must be dispenser, counter_pad or call_display, got %r" % (path, kind))
    module = slots.load(kind)
    import config
    import device

    try:
        config.check(cfg, path)
    except config.ConfigError as e:
        raise SystemExit(str(e))
    uart = board.bus_uart(opts.get("serial"))
    clock = board.real_clock()
    dev = module.make(cfg, uart, clock(), cause)
    print("ready %s addr=%d slot=%s" % (kind, dev.addr, slots.active))
    try:
        asyncio.run(device.serve(dev, clock, slots.wdt, run_ms=opts.get("run_ms")))
    finally:
        dev.deinit()
        uart.deinit()


main()

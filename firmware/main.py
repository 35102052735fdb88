"""The board's entry point: boot (slots.start: config.json, the device kind's module from the
active slot, the bus UART, the device), then the loop (device.run) forever.

On the Pico it runs at boot with no arguments. On the MicroPython Unix port (tests and the
hardware-in-the-loop run against the gateway over pty pairs):

    micropython firmware/main.py --serial /dev/pts/N --kind dispenser --addr 3 [--run-ms MS]
    micropython firmware/main.py --serial /dev/pts/N --config path/config.json

--serial falls back to $COUNTERFLOOR_SERIAL; the flash directory (config.json, saved display
content, slot marker) is $COUNTERFLOOR_FLASH or the working directory. --kind/--addr override the
file's values; without a config file they are enough. Prints "ready KIND addr=N" once listening.
Kept this short on purpose: the Pico compiles it from source and holds its code while it runs.
"""

import gc
import sys

# board first: it lives on, and takes the memory this file was just compiled in, which the
# interpreter may still point to (the GC scans the stack conservatively): what such a stale
# pointer pins is then something the board keeps anyway, not the loader dropped below.
import board  # noqa: F401


def boot():
    # The boot and the unload run in this function, whose frames are gone before the loop starts.
    # Written at the top level, a word left on the C stack in the loop's frames pointed at the
    # dropped slots module in some heap layouts (the GC scans the stack conservatively), and kept
    # it and its constants, ~1.9 KB (docs/firmware.md, "Memory").
    import slots

    dev, clock, run_ms = slots.start(sys.argv[1:])
    wdt = slots.wdt
    # Booted: the loader, the configuration check and the display wiring are not needed again.
    # Their globals are emptied, and the entries set to None before they are deleted (a dict
    # keeps a deleted entry's value until the slot is reused), so that nothing keeps their code.
    for name in ("slots", "config", "wiring"):
        sys.modules[name].__dict__.clear()
        sys.modules[name] = None  # type: ignore[assignment]
        del sys.modules[name]
    return dev, clock, wdt, run_ms


dev, clock, wdt, run_ms = boot()
boot = None  # type: ignore[assignment]  # as above: a deleted entry's value stays until reused
del boot
gc.collect()  # the loop starts with the boot's garbage gone

import device  # noqa: E402 -- after the boot, which put the active slot on sys.path

device.run(dev, clock, wdt, run_ms)

# ruff: noqa: E402, UP031 -- MicroPython scripts: imports follow the sys.path setup; %-format
"""Boot under MicroPython: the reset cause (and RESET_FW_UPDATE after a FW_COMMIT marker), the
watchdog, A/B slots (the active slot's module, else the other slot's, made active), and
config.json checks that name the bad field.
    micropython -X heapsize=192K check_boot.py FIRMWARE_DIR TMP_DIR"""

import os
import sys

from fwcheck import check, equal, finish, setup

tmp = setup()
import board
import config
import slots


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def read(path):
    with open(path) as f:
        return f.read()


def fresh():
    for m in ("probe", "helper"):
        if m in sys.modules:
            del sys.modules[m]
    for d in list(sys.path):
        if d.startswith(tmp):
            sys.path.remove(d)
    slots.active = None
    slots.fell_back = False


for d in ("a", "b"):
    os.mkdir(tmp + "/" + d)
# Slot a is broken half-way: its helper imports, then probe raises.
write(tmp + "/a/helper.py", "WHICH = 'a'\n")
write(tmp + "/a/probe.py", "import helper\nraise RuntimeError('broken build')\n")
write(tmp + "/b/helper.py", "WHICH = 'b'\n")
write(tmp + "/b/probe.py", "import helper\nWHICH = 'b'\nHELPER = helper.WHICH\n")

write(tmp + "/slot", "a")
m = slots.load("probe", tmp)
equal((m.WHICH, m.HELPER), ("b", "b"), "fell back to slot b, with b's helper")
check(slots.fell_back and slots.active == "b", "fallback recorded")
equal(read(tmp + "/slot"), "b", "slot b made active")

fresh()
write(tmp + "/a/probe.py", "import helper\nWHICH = 'a'\nHELPER = helper.WHICH\n")
write(tmp + "/slot", "a")
m = slots.load("probe", tmp)
equal((m.WHICH, m.HELPER, slots.active, slots.fell_back), ("a", "a", "a", False), "active slot a used")

fresh()
write(tmp + "/b/probe.py", "raise ImportError('also broken')\n")
write(tmp + "/slot", "b")
m = slots.load("probe", tmp)
equal((m.WHICH, slots.active), ("a", "a"), "falls back from b to a")

fresh()
write(tmp + "/a/probe.py", "x = (\n")  # a syntax error is an import failure too
write(tmp + "/slot", "a")
try:
    slots.load("probe", tmp)
    check(False, "no working slot must raise")
except ImportError as e:
    check("no slot" in str(e), "no working slot: %s" % e)
fresh()

# Reset cause: the FW_COMMIT marker (naming the slot) wins once, then the hardware cause; the
# marker left empty by RESTART is a software reset.
write(tmp + "/fw_committed", "b")
equal(slots.boot(4000, tmp), 5, "reset cause after FW_COMMIT")
check("fw_committed" not in os.listdir(tmp), "marker removed")
equal(slots.wdt.timeout_ms, 4000, "watchdog started")
slots.reset_cause = None
equal(slots.boot(4000, tmp), board.reset_cause(), "hardware reset cause")
slots.reset_cause = None
write(tmp + "/fw_committed", "")
equal(slots.boot(4000, tmp), 4, "reset cause after RESTART")
slots.reset_cause = None

# A slot on trial: its boots counted in the marker, then the other slot after three.
write(tmp + "/a/probe.py", "WHICH = 'a'\n")
write(tmp + "/b/probe.py", "WHICH = 'b'\n")
write(tmp + "/slot", "b 0")
for n in (1, 2, 3):
    equal(slots.load("probe", tmp).WHICH, "b", "on trial, boot %d: b" % n)
    equal(read(tmp + "/slot"), "b %d" % n, "boot %d on trial counted" % n)
    fresh()
equal(slots.load("probe", tmp).WHICH, "a", "a fourth boot on trial: back to a")
equal(read(tmp + "/slot"), "a", "a active again, off trial")
fresh()
write(tmp + "/slot", "b x")
equal(slots.load("probe", tmp).WHICH, "a", "an unreadable trial count: back to the other slot")
fresh()

# The boot number: kept on flash, one more at every boot; random where none is kept.
number = tmp + "/boot_number"
first = slots.boot_number(tmp)
check(0 < first <= 0xFFFFFFFF, "a first boot starts from a random number: %r" % first)
equal(int(read(number)), first, "the boot number is kept")
equal(slots.boot_number(tmp), first + 1, "the next boot's is one more")
equal(int(read(number)), first + 1, "and is kept")
check("boot_number.tmp" not in os.listdir(tmp), "written aside, then renamed")
write(number, "%d" % 0xFFFFFFFF)
wrapped = slots.boot_number(tmp)
check(wrapped > 0 and int(read(number)) == wrapped, "past 2**32 - 1: not 0 (none) but a random number, kept")
write(number, "garbage")
garbled = slots.boot_number(tmp)
check(garbled > 0 and int(read(number)) == garbled, "an unreadable number: a random one, kept")
write(number, "41")
os.mkdir(number + ".tmp")  # the flash cannot be written: the next number would not be kept
draws = [slots.boot_number(tmp) for _ in range(3)]
check(all(draws) and 42 not in draws and len(set(draws)) == 3, "not kept: a random number every boot %r" % draws)
equal(read(number), "41", "nothing kept meanwhile")
os.rmdir(number + ".tmp")
equal(slots.boot_number(tmp), 42, "kept again")

# config.json
good = {"kind": "counter_pad", "addr": 4, "debounce_ms": 25}
equal(config.check(good), good, "good config")
for good in (  # the display keys (wiring.py), each part on pins of its bus
    {"kind": "call_display", "addr": 3, "display": "max7219", "display_pins": [10, 11, 9], "display_hz": 1000000},
    {"kind": "call_display", "addr": 3, "display": "ssd1306", "display_pins": [2, 3], "display_addr": 61},
    {"kind": "dispenser", "addr": 1, "display": "none"},
    {"kind": "counter_pad", "addr": 2, "display": "tm1637", "display_pins": [26, 27]},
    {"kind": "call_display", "addr": 3, "display_chips": 2},
):
    equal(config.check(good), good, "good display config")
for bad, msg in (
    ({"kind": "dispenser", "addr": 1, "display": "max7219"}, "display must be one of ssd1306, none for a dispenser"),
    ({"kind": "counter_pad", "addr": 1, "display": 7}, "display must be one of tm1637, none for a counter_pad, got 7"),
    ({"kind": "call_display", "addr": 1, "display_pins": [18, 19]}, "display_pins must be 3 GP numbers 0..28"),
    ({"kind": "call_display", "addr": 1, "display_pins": [18, 20, 17]}, "SCK must be GP 2, 6, 10 ... 26 and MOSI"),
    ({"kind": "dispenser", "addr": 1, "display_pins": [21, 22]}, "SDA must be an even GP and SCL the next pin"),
    ({"kind": "dispenser", "addr": 1, "display_pins": "20,21"}, "display_pins must be 2 GP numbers"),
    ({"kind": "counter_pad", "addr": 1, "display_pins": [18, 40]}, "display_pins must be 2 GP numbers 0..28"),
    ({"kind": "call_display", "addr": 1, "display_hz": 100}, "display_hz must be an integer 10000..10000000, got 100"),
    ({"kind": "call_display", "addr": 1, "display_chips": 0}, "display_chips must be an integer 1..8"),
    ({"kind": "printer", "addr": 1}, "kind must be one of"),
    ({"kind": "dispenser"}, "addr is missing"),
    ({"kind": "dispenser", "addr": 17}, "addr must be an integer 1..16, got 17"),
    ({"kind": "dispenser", "addr": 2, "debounce_ms": True}, "debounce_ms must be an integer"),
    ([1], "must be a JSON object"),
):
    try:
        config.check(bad)
        check(False, "accepted bad config %r" % (bad,))
    except config.ConfigError as e:
        check(msg in str(e), "config error %r lacks %r" % (str(e), msg))
write(tmp + "/config.json", "{not json")
try:
    config.load(tmp + "/config.json")
    check(False, "bad JSON accepted")
except config.ConfigError as e:
    check("is not valid JSON" in str(e), str(e))
equal(read(tmp + "/config.json"), "{not json", "a bad config file is left as it is")
print("boot checked")
finish()

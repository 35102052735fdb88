"""The hardware seam: serial links by URL (sim://, loop://, a pty pair), the simulated devices,
and the GPIO counter with its own debounce (gpiozero MockFactory; MockPin ignores bounce_time)."""

from __future__ import annotations

import os
import threading
from typing import Any

import pytest

from gateway.bus import BusMaster, SyncDriver
from gateway.device_link import DeviceLink, DeviceSpec, Execute, LinkState
from hal.codec import P
from hal.gpio import Debouncer, DirectCounter, pin_factory
from hal.protocol_sim import parse_sim_url
from hal.serial_link import open_link
from hal.simdevice import SimDevice
from office.config import OfficeConfig
from office.model import CallNext, Office, OpenCounter
from tests.conftest import tokyo

POLL_GOLDEN = bytes.fromhex("000305010103 0fb500".replace(" ", ""))  # vector "poll": addr 5 seq 0 ack 0


def replies(data: bytes) -> list[Any]:
    return list(P.Decoder().feed(data))


@pytest.mark.parametrize(("kind", "code"), [("dispenser", 1), ("counter_pad", 2), ("call_display", 3)])
def test_a_sim_url_starts_a_device_that_says_hello(kind: str, code: int) -> None:
    port = open_link(f"sim://{kind}?addr=7")
    port.write(P.Identify(7, 3).to_bytes())
    (hello,) = replies(port.read(100))
    assert (hello.NAME, hello.addr, hello.seq, hello.kind, hello.proto) == ("HELLO", 7, 3, code, P.PROTOCOL_VERSION)
    assert hello.boot != 0 and hello.lap == 0  # a boot number of its own (random at a first boot)
    port.write(P.Identify(8, 4).to_bytes())  # another address: silence
    assert port.in_waiting == 0 and port.read(10) == b""
    port.close()


def test_a_sim_bus_answers_only_for_the_addressed_device() -> None:
    port = open_link("sim://bus?dispenser=1&counter_pad=5,6&call_display=16&backend=python")
    assert sorted(port.bus.devices) == [1, 5, 6, 16]
    port.write(POLL_GOLDEN)
    (hello,) = replies(port.read(100))
    assert (hello.addr, hello.kind, hello.reset_cause) == (5, P.KIND_COUNTER_PAD, P.RESET_POWER_ON)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("sim://toaster?addr=1", "unknown device 'toaster'"),
        ("sim://dispenser", "addr is missing"),
        ("sim://dispenser?addr=17", "outside 1-16"),
        ("sim://dispenser?addr=one", "not a number"),
        ("sim://bus", "needs devices"),
        ("sim://bus?dispenser=1&counter_pad=1", "two devices at address 1"),
        ("sim://dispenser?addr=1&backend=toaster", "unknown backend"),
        ("sim://dispenser?addr=1&colour=red", "unknown option"),
        ("sim://dispenser?addr=1&corrupt=lots", "corrupt must be a number"),
    ],
)
def test_a_bad_sim_url_names_the_problem(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        open_link(url)


def test_sim_url_fault_options_parse() -> None:
    devices, backend, faults = parse_sim_url("sim://counter_pad?addr=5&seed=3&corrupt=0.001&drop=0.01&backend=python")
    assert (devices, backend, faults) == ([("counter_pad", 5)], "python", {"seed": 3, "corrupt": 0.001, "drop": 0.01})


def test_loop_url_carries_golden_frames_that_decode_one_byte_at_a_time() -> None:
    port = open_link("loop://", timeout=0)
    port.write(b"\x13\x37" + POLL_GOLDEN + P.Ack(5, 41).to_bytes())  # noise first
    data = port.read(100)
    decoder = P.Decoder()
    frames = [f for b in data for f in decoder.feed(bytes([b]))]
    assert frames == [P.Poll(5, 0, 0), P.Ack(5, 41)]
    assert bytes(frames[1].to_bytes()) == bytes.fromhex("00060580298 9bf00".replace(" ", ""))
    assert decoder.dropped == 1  # the noise


def test_a_sim_device_replays_a_retry_and_does_not_act_twice() -> None:
    display = SimDevice(P.KIND_CALL_DISPLAY, 16)
    call = P.Call(16, 8, P.CALL_NEW, "B023", "3").to_bytes()
    first = display.receive(call)
    again = display.receive(call)
    assert first == again == P.Ack(16, 8).to_bytes()
    assert display.calls == [(P.CALL_NEW, "B023", "3")]
    assert replies(display.receive(P.Lamps(16, 9, 1).to_bytes()))[0].reason == P.NAK_UNSUPPORTED


def test_a_sim_device_keeps_events_until_acknowledged_and_says_hello_until_identified() -> None:
    pad = SimDevice(P.KIND_COUNTER_PAD, 5)
    assert pad.key(P.KEY_CALL_NEXT) == 1
    assert replies(pad.receive(P.Poll(5, 0, 0).to_bytes()))[0].NAME == "HELLO"
    pad.receive(P.Identify(5, 1).to_bytes())
    assert replies(pad.receive(P.Poll(5, 2, 0).to_bytes())) == [P.Key(5, 2, 1, P.KEY_CALL_NEXT)]
    assert replies(pad.receive(P.Poll(5, 3, 0).to_bytes())) == [P.Key(5, 3, 1, P.KEY_CALL_NEXT)]  # not acked yet
    assert replies(pad.receive(P.Poll(5, 4, 1).to_bytes())) == [P.Ack(5, 4)]
    pad.key(P.KEY_DONE)
    pad.reboot()
    assert pad.waiting_events == 0 and pad.reset_cause == P.RESET_WATCHDOG
    assert replies(pad.receive(P.Poll(5, 5, 0).to_bytes()))[0].reset_cause == P.RESET_WATCHDOG


class _WallClock:
    """Real monotonic time; reads on the pty wait (with a timeout), so nothing needs to sleep."""

    def now(self) -> float:
        import time

        return time.monotonic()

    def wait_until(self, t: float) -> None:
        pass


def test_the_bus_over_a_pty_pair_with_a_scripted_peer(nerima: OfficeConfig) -> None:
    master, slave = os.openpty()
    path = os.ttyname(slave)
    port = open_link(path, timeout=0.05)
    os.close(slave)  # pyserial holds its own descriptor
    pad = SimDevice(P.KIND_COUNTER_PAD, 5)
    heard: list[int] = []

    def peer() -> None:  # the device end: answer what arrives, until the port closes
        while True:
            try:
                data = os.read(master, 256)
            except OSError:
                return
            if not data:
                return
            heard.append(len(data))
            reply = pad.receive(data)
            if reply:
                os.write(master, reply)

    thread = threading.Thread(target=peer, daemon=True)
    thread.start()
    wall = tokyo(2027, 3, 15, 10, 0)
    office = Office(nerima)
    office.execute(OpenCounter("1"), wall)
    link = DeviceLink(DeviceSpec(5, P.KIND_COUNTER_PAD, counter="1"), lambda: "tok")
    bus = BusMaster([link], lambda c: office.execute(c, wall), reply_timeout=0.5)
    driver = SyncDriver(bus, port, _WallClock())
    try:
        driver.run_cycles(2)
        assert link.state is LinkState.ONLINE and link.identity is not None
        pad.key(P.KEY_CALL_NEXT)
        effects = driver.run_cycles(2)
        assert CallNext("1") in [e.command for e in effects if isinstance(e, Execute)]
        assert pad.number == "----"  # nobody waiting: shown on the pad over the pty
        assert bus.timeouts == 0
    finally:
        port.close()
        thread.join(timeout=5)
        os.close(master)
    assert heard


def test_debounce_ignores_glitches_and_reports_each_held_change_once() -> None:
    d = Debouncer(hold=0.02)
    assert d.update(True, 0.000) is None
    assert d.update(False, 0.005) is None  # a 5 ms glitch
    assert d.update(False, 0.100) is None
    assert d.update(True, 0.200) is None
    assert d.update(True, 0.210) is None
    assert d.update(True, 0.220) is True  # held 20 ms
    assert d.update(True, 0.500) is None  # still held: no repeat
    assert d.update(False, 0.600) is None
    assert d.update(True, 0.605) is None  # contact bounce on release
    assert d.update(False, 0.606) is None
    assert d.update(False, 0.626) is False


def test_a_gpio_counter_turns_debounced_presses_into_keys_and_drives_its_lamp() -> None:
    factory = pin_factory("mock")
    counter = DirectCounter(factory, {"call_next": 17, "done": 27}, {"green": 22, "red": 23}, buzzer=24)
    call = factory.pin(17)
    assert counter.check(0.0) == []
    call.drive_low()  # pressed (pull-up, switch to ground)
    assert counter.check(0.001) == []
    assert counter.check(0.030) == [P.KEY_CALL_NEXT]
    assert counter.check(0.500) == []  # held: one press
    call.drive_high()
    counter.check(0.6)
    counter.check(0.7)
    call.drive_low()
    counter.check(0.71)
    call.drive_high()  # a 5 ms bounce is not a press
    assert counter.check(0.715) == [] and counter.check(0.8) == []
    counter.status_lamp(P.LAMP_GREEN)
    assert (factory.pin(22).state, factory.pin(23).state) == (1, 0)
    counter.status_lamp(P.LAMP_RED)
    assert (factory.pin(22).state, factory.pin(23).state) == (0, 1)
    counter.beep(True)
    assert factory.pin(24).state == 1
    counter.deinit()


def test_gpio_configuration_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="unknown GPIO pin factory 'gpio9'"):
        pin_factory("gpio9")
    with pytest.raises(ValueError, match="unknown key"):
        DirectCounter(pin_factory("mock"), {"launch": 5})
    with pytest.raises(ValueError, match="unknown lamp colour"):
        DirectCounter(pin_factory("mock"), {"done": 5}, {"blue": 6})


# -- checking a URL without opening it ----------------------------------------------------------------
URLS = [
    # (url, words of url_problem's answer, or None: it may open)
    ("loop://", None),
    ("loop://?logging=debug", None),
    ("loop://?bogus=1", "unknown option 'bogus'"),
    ("loop://?logging=loud", "logging must be one of"),
    ("xyz://nowhere", "protocol 'xyz' not known"),
    ("../x://y", "not known"),
    ("sim://dispenser?addr=1", None),
    ("SIM://bus?dispenser=1&call_display=16", None),
    ("sim://bus?dispenser=1&counter_pad=1", "two devices at address 1"),
    ("sim://dispenser?addr=1&seed=7&corrupt=0.5", None),
    ("sim://dispenser?addr=1&seed=nan", "seed must be a whole number"),
    ("sim://dispenser?addr=1&seed=inf", "seed must be a whole number"),
    ("sim://dispenser?addr=17", "outside 1-16"),
    ("sim://printer", "unknown device 'printer'"),
    ("spy://loop://", "takes a device path"),
    ("socket://localhost", "expected socket://<host>:<port>"),
    ("socket://localhost:99999", "expected socket://<host>:<port>"),
    ("rfc2217://localhost:1?timeout=soon", "timeout must be a number"),
    ("", "empty"),
    ("/dev/ttyUSB0 ", "spaces before or after it"),
]


@pytest.mark.parametrize(("url", "problem"), URLS, ids=[u or "empty" for u, _ in URLS])
def test_url_problem_agrees_with_open_link_and_opens_nothing(
    url: str, problem: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hal.serial_link import url_problem

    monkeypatch.setenv("COUNTERFLOOR_MICROPYTHON", "")  # sim:// on the Python devices: no processes
    answer = url_problem(url)
    assert answer is None if problem is None else problem in (answer or ""), answer
    if url.startswith(("socket:", "rfc2217:", "spy:", "/dev/")) or not url:
        return  # opening these would connect, or look for a device path (missing: an OSError, retried)
    try:
        open_link(url).close()
    except ValueError:
        assert answer is not None, f"{url!r} passed the check but cannot be opened"
    else:
        assert answer is None, f"{url!r} was refused by the check but opens"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("sim://printer", None),
        ("sim://printer?paper=near_end&accept=64", None),
        ("sim://printer?paper=wet", "paper must be ok, near_end or out"),
        ("sim://bus?dispenser=1", "not a simulated printer URL"),
        ("/dev/usb/lp9", None),  # missing now: a printer not answering, tried again later
        ("lpt://1", "protocol 'lpt' not known"),
        ("loop://?bogus=1", "unknown option 'bogus'"),
    ],
)
def test_printer_url_problem_agrees_with_open_printer(url: str, problem: str | None) -> None:
    from hal.printer import PrinterPortError, open_printer, printer_url_problem

    answer = printer_url_problem(url)
    assert answer is None if problem is None else problem in (answer or ""), answer
    if url.startswith("/dev/"):
        return
    try:
        open_printer(url).close()
    except PrinterPortError:
        assert answer is not None
    else:
        assert answer is None

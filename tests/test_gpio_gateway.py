"""GPIO counters in the gateway ([[devices]] kind gpio_counter, gateway.gpio_counters): their
config, and a key pressed on gpiozero's MockFactory pins becoming a call that the simulated call
display on the bus shows. The gateway runs on a fake clock; nothing sleeps."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway import service
from gateway.gpio_counters import REFUSED_BEEP_S
from hal import gpio
from office import config as cfg
from office.config import ConfigError, Device, parse_config
from tests.conftest import EXAMPLES, tokyo
from tests.floor_support import FakeClock

MONDAY_10 = tokyo(2027, 3, 15, 10, 0)
CALL, DONE, PAUSE, GREEN, AMBER, RED, BUZZER = 17, 27, 5, 22, 23, 24, 25
GPIO_DEVICE = f"""
[[devices]]
kind = "gpio_counter"
counter = "2"
keys = {{ call_next = {CALL}, done = {DONE}, pause = {PAUSE} }}
lamps = {{ green = {GREEN}, amber = {AMBER}, red = {RED} }}
buzzer = {BUZZER}
"""


def example_with(devices: str, gateway_extra: str = 'pin_factory = "mock"') -> str:
    text = (EXAMPLES / "oizumi.toml").read_text(encoding="utf-8")
    text = text.replace("\n[gateway]\n", f"\n[gateway]\n{gateway_extra}\n", 1)
    return text + devices


# -- config ------------------------------------------------------------------------------------------
def test_the_copied_names_match_hal_gpio() -> None:
    assert tuple(gpio.KEY_NAMES) == cfg.GPIO_KEY_NAMES
    assert tuple(gpio.PIN_FACTORIES) == cfg.GPIO_PIN_FACTORIES


def test_a_gpio_counter_is_parsed_with_its_pins() -> None:
    config = parse_config(example_with(GPIO_DEVICE))
    assert config.gateway.pin_factory == "mock"
    d = config.devices[-1]
    assert d == Device(
        "gpio_counter",
        0,
        "",
        counter="2",
        keys=(("call_next", CALL), ("done", DONE), ("pause", PAUSE)),
        lamps=(("green", GREEN), ("amber", AMBER), ("red", RED)),
        buzzer=BUZZER,
    )
    assert not d.on_bus and all(other.on_bus for other in config.devices[:-1])
    assert parse_config(example_with("", "")).gateway.pin_factory == "lgpio"  # the default


@pytest.mark.parametrize(
    ("device", "gateway", "message"),
    [
        ('counter = "2"\nkeys = { call_next = 17 }\naddr = 3', "", "devices[6].addr: unknown setting for a gpio"),
        ('counter = "2"\nkeys = { call_next = 17 }\nport = "x"', "", "devices[6].port: unknown setting"),
        ('counter = "9"\nkeys = { call_next = 17 }', "", "devices[6].counter: unknown counter '9'"),
        ("keys = { call_next = 17 }", "", "devices[6].counter: must be an id"),
        ('counter = "2"', "", "devices[6].keys: must be a table of call_next / done"),
        ('counter = "2"\nkeys = { launch = 17 }', "", "devices[6].keys.launch: unknown key; one of ['call_next'"),
        ('counter = "2"\nkeys = { call_next = 40 }', "", "devices[6].keys.call_next: must be a BCM pin number 0-27"),
        ('counter = "2"\nkeys = { call_next = true }', "", "devices[6].keys.call_next: must be a BCM pin"),
        ('counter = "2"\nkeys = { call_next = 17 }\nlamps = { blue = 5 }', "", "devices[6].lamps.blue: unknown lamp"),
        (
            'counter = "2"\nkeys = { call_next = 17, done = 17 }',
            "",
            "devices[6].keys.done: pin 17 is already used by devices[6].keys.call_next",
        ),
        ('counter = "2"\nkeys = { call_next = 17 }\nbuzzer = "x"', "", "devices[6].buzzer: must be a BCM pin"),
        ('counter = "2"\nkeys = { call_next = 17 }', 'pin_factory = "wiringpi"', "gateway.pin_factory: unknown pin"),
    ],
)
def test_a_bad_gpio_counter_is_refused_naming_the_key(device: str, gateway: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(example_with(f'\n[[devices]]\nkind = "gpio_counter"\n{device}\n', gateway))
    assert message in str(exc.value)


def test_pins_are_unique_across_gpio_counters() -> None:
    second = '\n[[devices]]\nkind = "gpio_counter"\ncounter = "3"\nkeys = { done = 4 }\nbuzzer = 25\n'
    with pytest.raises(ConfigError, match=r"devices\[7\]\.buzzer: pin 25 is already used by devices\[6\]\.buzzer"):
        parse_config(example_with(GPIO_DEVICE + second))


# -- in the gateway ----------------------------------------------------------------------------------
class Floor:
    """The example's simulated bus plus a GPIO counter for counter 2, on a fake clock."""

    def __init__(self, tmp_path: Path) -> None:
        self.clock = FakeClock()
        text = example_with(GPIO_DEVICE)
        (tmp_path / "gpio.toml").write_text(text, encoding="utf-8")
        config = cfg.load_config(tmp_path / "gpio.toml")

        def wall() -> datetime:
            return MONDAY_10 + timedelta(seconds=self.clock.now())

        self.gw = service.Gateway(
            config, text, tmp_path / "j.db", tmp_path / "j.sock", io.StringIO(), clock=self.clock, wall=wall
        )
        self.gw.start()
        assert self.gw.gpio is not None
        self.factory: Any = self.gw.gpio.factory
        self.display = self.gw.buses[0].port.bus.devices[16]

    def pin(self, n: int) -> Any:
        return self.factory.pin(n)

    def until(self, what: str, cond: Callable[[], bool], steps: int = 2000) -> None:
        for _ in range(steps):
            if cond():
                return
            self.gw.step()
        raise AssertionError(f"not {what} after {steps} steps (t={self.clock.now():.3f} s)")

    def run_for(self, seconds: float) -> None:
        end = self.clock.now() + seconds
        while self.clock.now() < end:
            self.gw.step()

    def ok(self, req: dict[str, Any]) -> dict[str, Any]:
        reply = self.gw.handle(req)
        assert reply["ok"], reply
        return reply

    def ticket(self, ticket: str) -> Any:
        assert self.gw.journal is not None
        return self.gw.journal.office.state.tickets[ticket]


@pytest.fixture
def floor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Floor]:
    monkeypatch.setenv("COUNTERFLOOR_MICROPYTHON", "")  # the pure-Python simulated devices
    f = Floor(tmp_path)
    yield f
    f.gw.close()
    assert f.gw.gpio is None


def test_a_key_press_calls_the_next_ticket_to_every_display(floor: Floor) -> None:
    f = floor
    f.ok({"cmd": "open", "counter": "2"})
    f.ok({"cmd": "issue", "service": "seal"})
    f.until("green", lambda: f.pin(GREEN).state == 1)
    f.pin(CALL).drive_low()  # pressed: pull-up, switch to ground
    f.until("shown", lambda: f.display.call == ("B-001", "2番窓口"))
    assert f.ticket("B-001").counter == "2"
    assert f.pin(BUZZER).state == 0


def test_a_held_key_calls_once_and_a_bounce_calls_nobody(floor: Floor) -> None:
    f = floor
    f.ok({"cmd": "open", "counter": "2"})
    for _ in range(3):
        f.ok({"cmd": "issue", "service": "seal"})
    f.run_for(0.5)
    f.pin(CALL).drive_low()
    f.until("shown", lambda: f.display.call == ("B-001", "2番窓口"))
    f.run_for(2.0)  # held for two seconds: still one press
    f.pin(CALL).drive_high()
    f.run_for(0.5)
    assert f.ticket("B-002").status.value == "waiting"
    assert f.display.call == ("B-001", "2番窓口")

    # A 5 ms bounce, shorter than the 20 ms hold, seen by the loop's polls: no call.
    gpio_counters, journal = f.gw.gpio, f.gw.journal
    assert gpio_counters is not None and journal is not None
    t = f.clock.now()
    f.pin(CALL).drive_low()
    gpio_counters.poll(t + 0.001, journal.office.state)
    f.pin(CALL).drive_high()
    gpio_counters.poll(t + 0.006, journal.office.state)
    f.clock.t = t + 0.006
    f.run_for(1.0)
    assert f.ticket("B-002").status.value == "waiting"

    # A press that holds past the debounce does call the next one.
    f.pin(CALL).drive_low()
    f.until("B-002 shown", lambda: f.display.call == ("B-002", "2番窓口"))


def test_lamp_follows_the_counter_and_a_refused_key_beeps(floor: Floor) -> None:
    f = floor
    lamps = lambda: (f.pin(GREEN).state, f.pin(AMBER).state, f.pin(RED).state)  # noqa: E731
    f.run_for(0.2)
    assert lamps() == (0, 0, 0)  # closed
    f.ok({"cmd": "open", "counter": "2"})
    f.until("green", lambda: lamps() == (1, 0, 0))

    f.pin(CALL).drive_low()  # nobody is waiting: refused
    f.until("beep", lambda: f.pin(BUZZER).state == 1)
    assert lamps() == (0, 0, 1)  # red while it sounds
    beep_at = f.clock.now()
    f.pin(CALL).drive_high()
    f.until("beep over", lambda: f.pin(BUZZER).state == 0)
    assert f.clock.now() - beep_at >= REFUSED_BEEP_S - 1e-9
    assert lamps() == (1, 0, 0)

    f.pin(PAUSE).drive_low()
    f.until("amber", lambda: lamps() == (0, 1, 0))
    assert f.gw.journal is not None
    assert f.gw.journal.office.state.counters["2"].status.value == "paused"

    f.pin(PAUSE).drive_high()
    f.ok({"cmd": "issue", "service": "seal"})
    f.run_for(REFUSED_BEEP_S)
    assert f.pin(BUZZER).state == 0
    f.pin(CALL).drive_low()  # the counter is paused: the office refuses the call
    f.until("refused beep", lambda: f.pin(BUZZER).state == 1)
    assert f.ticket("B-001").status.value == "waiting"

"""The Pico (RP2040) back-end of board.py: machine.Pin inputs and outputs, the bus on UART0, the
display's SPI or I2C, the PWM chime, the watchdog, the reset cause and reset. Imported by board.py on the Pico only."""

import time

import machine
from micropython import const

# protocol.RESET_* values.
_RESET_UNKNOWN = const(0)
_RESET_POWER_ON = const(1)
_RESET_PIN = const(2)
_RESET_WATCHDOG = const(3)
_RESET_SOFT = const(4)


def input_pin(number, name):
    return machine.Pin(number, machine.Pin.IN, machine.Pin.PULL_UP)


def output_pin(number, name):
    return machine.Pin(number, machine.Pin.OUT, value=0)


def bus_uart(path=None):
    # UART0 on GP0 (TX) and GP1 (RX), to the RS-485 transceiver (auto-direction).
    return machine.UART(
        0,
        115200,  # the bus (docs/protocol.md)
        tx=machine.Pin(0),
        rx=machine.Pin(1),
        timeout=0,
        rxbuf=512,
    )


def display_bus(part, pins, hz):
    """machine.SPI (max7219: SCK, MOSI), machine.I2C (ssd1306: SDA, SCL) or two open-drain Pins
    (tm1637: CLK, DIO; the module's pull-ups), on the RP2040's controller those pins belong to."""
    if part == "max7219":
        # SPI0 has SCK on GP 2, 6, 18, 22; SPI1 on 10, 14, 26
        return machine.SPI(pins[0] >> 3 & 1, baudrate=hz, sck=machine.Pin(pins[0]), mosi=machine.Pin(pins[1]))
    if part == "ssd1306":
        # I2C0 has SDA on GP 0, 4, 8 … 28; I2C1 on 2, 6, 10 … 26
        return machine.I2C(pins[0] >> 1 & 1, sda=machine.Pin(pins[0]), scl=machine.Pin(pins[1]), freq=hz)
    return (
        machine.Pin(pins[0], machine.Pin.OPEN_DRAIN, value=1),
        machine.Pin(pins[1], machine.Pin.OPEN_DRAIN, value=1),
    )


class PwmChime:
    """Tones on a PWM pin, stepped by _check(now) so that a chime never blocks the bus loop."""

    FREQS = ((880, 660), (660, 880), (988, 988))  # call, recall, attention
    NOTE_MS = 150
    GAP_MS = 100

    def __init__(self, number):
        self._pwm = machine.PWM(machine.Pin(number))
        self._pwm.duty_u16(0)
        self._notes = []
        self._until = None

    def play(self, tone, repeat):
        for _ in range(repeat):
            for f in self.FREQS[tone]:
                self._notes.append((f, self.NOTE_MS))
            self._notes.append((0, self.GAP_MS))

    def _check(self, now):
        if self._until is not None and time.ticks_diff(now, self._until) < 0:
            return
        if not self._notes:
            self._until = None
            self._pwm.duty_u16(0)
            return
        f, ms = self._notes.pop(0)
        if f:
            self._pwm.freq(f)
            self._pwm.duty_u16(16384)
        else:
            self._pwm.duty_u16(0)
        self._until = time.ticks_add(now, ms)

    def deinit(self):
        self._pwm.deinit()


def chime():
    return PwmChime(16)  # GP16, PWM to the amplifier


def watchdog(timeout_ms):
    return machine.WDT(timeout=timeout_ms)


def reset_cause():
    c = machine.reset_cause()
    if c == machine.PWRON_RESET:
        return _RESET_POWER_ON
    if c == machine.WDT_RESET:
        return _RESET_WATCHDOG
    if c == getattr(machine, "HARD_RESET", -1):
        return _RESET_PIN
    if c == getattr(machine, "SOFT_RESET", -1):
        return _RESET_SOFT
    return _RESET_UNKNOWN


def reset():
    machine.reset()


def flash_dir():
    return ""

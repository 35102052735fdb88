"""How a board is put together at boot: the Pico's pin map, the display part and its driver as
config.json says (docs/firmware.md, "Displays"), the device of its kind built on them, and a call
display's content restored as its last boot saved it.
Imported by slots.start() and dropped with the loader by main.py: none of this code is needed
once the device exists (a board's heap is small, docs/firmware.md "Memory").

Pins (Pico GP): bus UART0 TX 0, RX 1 (board.py); buttons or keys 2-7, active low with pull-ups.
Dispenser: service lamps 8-13. Counter pad: keys call next, done, recall, no-show, transfer,
pause; status lamp red 14, green 15. Call display: chime 16 (board_pico.py).

Display keys of config.json (config.py checks them):
    display       the part: call_display max7219 (default) | ssd1306 | none; dispenser ssd1306
                  (default) | none; counter_pad tm1637 (default) | none
    display_pins  Pico GP numbers: max7219 [SCK, MOSI, CS]; ssd1306 [SDA, SCL]; tm1637 [CLK, DIO]
    display_hz    the bus clock: SPI (max7219, default 5 MHz), I2C (ssd1306, default 400 kHz)
    display_chips max7219: chips in the chain (default 1, 8 digits each)
    display_addr  ssd1306: its I2C address (default 0x3C)"""

import board

_KEYS = (2, 3, 4, 5, 6, 7)  # a dispenser's service buttons, a pad's keys
# kind -> (part, pins, bus clock): the pin map of platformio.ini's environments.
_DEFAULTS = {
    "dispenser": ("ssd1306", (20, 21), 400000),
    "counter_pad": ("tm1637", (18, 19), 0),
    "call_display": ("max7219", (18, 19, 17), 5000000),
}


def part(kind, cfg):
    """The display part the board has: a driver's name, or "none"."""
    return cfg.get("display", _DEFAULTS[kind][0])


def driver(kind, cfg):
    """The board's display driver, set up and blank, or None when it has none."""
    _, pins, hz = _DEFAULTS[kind]
    name = part(kind, cfg)
    if name == "none":
        return None
    pins = cfg.get("display_pins", pins)
    hz = cfg.get("display_hz", hz)
    if name == "max7219":
        from drv_max7219 import Max7219

        return Max7219(board.display_bus(name, pins, hz), board.output_pin(pins[2], "cs"), cfg.get("display_chips", 1))
    if name == "ssd1306":
        from drv_ssd1306 import Ssd1306

        return Ssd1306(board.display_bus(name, pins, hz), cfg.get("display_addr", 0x3C))
    from drv_tm1637 import Tm1637

    clk, dio = board.display_bus(name, pins, hz)
    # On the Unix port the lines are stand-ins: no chip to wait for between edges.
    return Tm1637(clk, dio, 7, 5 if board.PICO else 0)


def make(kind, module, cfg, uart, now, reset_cause):
    """The device of `kind` (`module`, its class's module from the active slot) described by
    `cfg`, on the board's pins, with its display."""
    addr = cfg["addr"]
    screen = driver(kind, cfg)
    if kind == "dispenser":
        n = cfg.get("services", len(_KEYS))
        buttons = [board.input_pin(_KEYS[i], "button%d" % i) for i in range(n)]
        lamps = [board.output_pin(8 + i, "lamp%d" % i) for i in range(n)]
        return module.Dispenser(addr, uart, buttons, lamps, now, reset_cause, cfg.get("debounce_ms", 30), screen)
    if kind == "counter_pad":
        keys = [board.input_pin(pin, "key%d" % module.KEYS[i]) for i, pin in enumerate(_KEYS)]
        return module.CounterPad(
            addr,
            uart,
            keys,
            board.output_pin(14, "lamp_red"),
            board.output_pin(15, "lamp_green"),
            now,
            reset_cause,
            cfg.get("debounce_ms", 30),
            cfg.get("transfer_to", 0),
            screen,
        )
    state = board.path_join(board.flash_dir(), cfg.get("state_file", "display_state.json"))
    digits = part(kind, cfg) == "max7219"
    return restore(module.CallDisplay(addr, uart, board.chime(), now, reset_cause, state, screen, digits), now)


def restore(dev, now):
    """A call display's content as its last boot saved it (CallDisplay._save), checked through
    the codec so that restored content is content the bus could carry; a missing, unreadable or
    bad file is ignored. Returns `dev`."""
    import json

    import protocol as p

    try:
        with open(dev.state_path) as f:
            state = json.load(f)
    except (OSError, ValueError):  # missing or not JSON: ignored
        return dev
    if not isinstance(state, dict):
        return dev
    try:
        call = state.get("call")
        if call:
            p.Call(dev.addr, 0, p.CALL_RECALL, call[0], call[1])
            dev.call = (call[0], call[1])
        recent = state.get("recent") or []
        p.Recent(dev.addr, 0, recent)
        dev.recent = [(e[0], e[1]) for e in recent]
        message = state.get("message") or []
        p.ShowText(dev.addr, 0, message)
        dev.message = list(message)
    except (ValueError, TypeError, IndexError, KeyError) as e:
        print("call display: saved content ignored:", repr(e))
        dev.call, dev.recent, dev.message = None, [], []
    dev._draw(now)
    return dev

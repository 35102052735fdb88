"""The board's configuration on flash: config.json, e.g.
    {"kind": "dispenser", "addr": 3, "services": 4}
Keys: kind (dispenser | counter_pad | call_display), addr (1..16), and optionally debounce_ms
(5..500), services (dispenser, 1..6 on the Pico), transfer_to (counter pad, 0..15), state_file
(call display), watchdog_ms (1000..8000), and the display keys (wiring.py: display, display_pins,
display_hz, display_chips, display_addr). load() names what is wrong with a bad file; it never
writes the file."""


class ConfigError(ValueError):
    pass


def check(cfg, where="config"):
    """`cfg` if it is a valid configuration, else ConfigError naming the field."""
    if not isinstance(cfg, dict):
        raise ConfigError("%s: must be a JSON object" % where)
    # The tables are local, not module attributes: a board keeps every module-level name interned.
    kinds = ("dispenser", "counter_pad", "call_display")
    ranges = {
        "addr": (1, 16),
        "debounce_ms": (5, 500),
        "services": (1, 6),
        "transfer_to": (0, 15),
        "watchdog_ms": (1000, 8000),
        "display_hz": (10000, 10000000),
        "display_chips": (1, 8),
        "display_addr": (8, 119),
    }
    if cfg.get("kind") not in kinds:
        raise ConfigError("%s: kind must be one of %s, got %r" % (where, ", ".join(kinds), cfg.get("kind")))
    if "addr" not in cfg:
        raise ConfigError("%s: addr is missing" % where)
    for key in ranges:
        if key in cfg:
            v = cfg[key]
            lo, hi = ranges[key]
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ConfigError("%s: %s must be an integer %d..%d, got %r" % (where, key, lo, hi, v))
    if "state_file" in cfg and not isinstance(cfg["state_file"], str):
        raise ConfigError("%s: state_file must be a file name" % where)
    _check_display(cfg, where)
    return cfg


def _check_display(cfg, where):
    """The display keys (wiring.py): a part this kind can drive, and pins that part can use on a
    Pico (SPI SCK on GP 2, 6 … 26 with MOSI the next pin; I2C SDA on an even GP with SCL next)."""
    import wiring  # the default part is wiring.py's

    parts = {"dispenser": ("ssd1306",), "counter_pad": ("tm1637",), "call_display": ("max7219", "ssd1306")}
    part = wiring.part(cfg["kind"], cfg)
    if part != "none" and part not in parts[cfg["kind"]]:
        ok = ", ".join(parts[cfg["kind"]] + ("none",))
        raise ConfigError("%s: display must be one of %s for a %s, got %r" % (where, ok, cfg["kind"], part))
    if "display_pins" not in cfg or part == "none":
        return
    pins = cfg["display_pins"]
    n = 3 if part == "max7219" else 2
    if not isinstance(pins, list) or len(pins) != n or not all(type(x) is int and 0 <= x <= 28 for x in pins):
        raise ConfigError("%s: display_pins must be %d GP numbers 0..28 for a %s, got %r" % (where, n, part, pins))
    if part == "max7219" and not (pins[0] % 4 == 2 and pins[1] == pins[0] + 1):
        msg = "%s: display_pins: SCK must be GP 2, 6, 10 ... 26 and MOSI the next pin, got %r"
        raise ConfigError(msg % (where, pins))
    if part == "ssd1306" and not (pins[0] % 2 == 0 and pins[1] == pins[0] + 1):
        raise ConfigError("%s: display_pins: SDA must be an even GP and SCL the next pin, got %r" % (where, pins))


def load(path):
    import json

    try:
        with open(path) as f:
            cfg = json.load(f)
    except OSError:
        raise ConfigError("%s: cannot be read" % path)
    except ValueError:
        raise ConfigError("%s: is not valid JSON" % path)
    return check(cfg, path)

"""The board's configuration on flash: config.json, e.g.
    {"kind": "dispenser", "addr": 3, "services": 4}
Keys: kind (dispenser | counter_pad | call_display), addr (1..16), and optionally debounce_ms
(5..500), services (dispenser, 1..6 on the Pico), transfer_to (counter pad, 0..15), state_file
(call display), watchdog_ms (1000..8000). load() names what is wrong with a bad file; it never
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
    return cfg


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

"""An atheris (libFuzzer) harness for the frame decoder, run by `python -m bench.run --only fuzz`
for a bounded number of inputs, and by tests/test_fuzz.py for 20,000 in CI (tests/test_codec.py
and tests/test_fuzz.py hold the Hypothesis properties). By hand:

    uv run python bench/fuzz_decoder.py -runs=200000 -timeout=5 -max_len=600 -seed=1

Each input is fed to a fresh firmware.protocol.Decoder in pieces whose sizes the input's first
byte chooses, and whole to Frame.from_bytes. A finding is any exception other than
ProtocolError from from_bytes, any exception at all from Decoder.feed (it must never let a parse
error escape), a decoded frame that does not re-encode to a frame equal to itself (or encodes
longer than MAX_WIRE), or an input that takes longer than -timeout (a hang). A corpus directory
may follow the flags; the bench seeds one with the golden vectors of tests/protocol_vectors.json.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

import atheris  # type: ignore[import-untyped]

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

with atheris.instrument_imports():
    import firmware.protocol

p: Any = firmware.protocol  # the codec is untyped (MicroPython subset); see hal/codec.py


def test_one_input(data: bytes) -> None:
    if not data:
        return
    step = 1 + data[0] % 48
    body = data[1:]
    decoder = p.Decoder()
    frames = []
    for i in range(0, len(body), step):
        frames += decoder.feed(body[i : i + step])
    for frame in frames:
        wire = frame.to_bytes()
        if len(wire) > p.MAX_WIRE:
            raise AssertionError(f"{frame!r} encodes to {len(wire)} bytes, more than MAX_WIRE")
        again = p.Frame.from_bytes(wire)
        if again != frame:
            raise AssertionError(f"{frame!r} re-decodes as {again!r}")
    with contextlib.suppress(p.ProtocolError):
        p.Frame.from_bytes(body)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

"""Checks firmware/protocol.py against tests/protocol_vectors.json, in whichever interpreter runs it.

    micropython -X heapsize=192K tests/micropython/check_protocol.py VECTORS_JSON MODULE_DIR
    python tests/micropython/check_protocol.py VECTORS_JSON MODULE_DIR

MODULE_DIR holds protocol.py or a protocol.mpy compiled by mpy-cross. Prints one line per check
and PASS at the end, or FAIL lines and exits 1. tests/test_codec.py runs it under both interpreters
and requires the same output from each (lines starting "micropython " are MicroPython-only).
Written in the subset both interpreters run: no pathlib, typing, dataclasses or dict-order reliance.
"""

import gc
import json
import sys

failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL " + msg)


def check(cond, msg):
    if not cond:
        fail(msg)
    return cond


def main():
    vectors_path = sys.argv[1]
    sys.path.insert(0, sys.argv[2])
    # The stream buffer is taken first, while the heap is one piece: compiling protocol.py
    # from source fragments MicroPython's heap.
    stream = bytearray(STREAM_BYTES)
    gc.collect()
    is_mpy = sys.implementation.name == "micropython"
    before = gc.mem_alloc() if is_mpy else 0
    import protocol as p

    gc.collect()
    if is_mpy:
        print(f"micropython import_bytes={gc.mem_alloc() - before}")

    with open(vectors_path) as f:
        doc = json.load(f)

    check_crc(p, doc["crc16"])
    check_cobs(p, doc["cobs"])
    frames = check_frames(p, doc["frames"])
    check_bad(p, doc["bad"])
    check_stream(p, doc["frames"], frames, stream)
    check_helpers(p)
    if is_mpy:
        gc.collect()
        print(f"micropython heap_used={gc.mem_alloc()}")
    if failures:
        print(f"{len(failures)} FAILED")
        sys.exit(1)
    print("PASS")


def check_crc(p, cases):
    for case in cases:
        got = p.crc16(case["ascii"].encode())
        check(got == int(case["crc"], 16), f"crc16 of {case['ascii']!r}: {got:04x} != {case['crc']}")
    print(f"crc16 {len(cases)} checked")


def check_cobs(p, cases):
    for case in cases:
        raw = bytes.fromhex(case["raw"])
        enc = p.cobs_encode(raw)
        check(enc.hex() == case["encoded"], "cobs_encode " + case["raw"][:16] + ": " + enc.hex()[:32])
        check(p.cobs_decode(bytes.fromhex(case["encoded"])) == raw, "cobs_decode " + case["encoded"][:16])
    print(f"cobs {len(cases)} checked")


def build(p, vector):
    kwargs = {}
    for name, value in vector["fields"].items():
        if isinstance(value, dict):
            value = bytes.fromhex(value["hex"])
        kwargs[name] = value
    return p.BY_NAME[vector["type"]](vector["addr"], vector["seq"], **kwargs)


def check_frames(p, vectors):
    frames = []
    for vector in vectors:
        name = vector["name"]
        frame = build(p, vector)
        frames.append(frame)
        wire = frame.to_bytes()
        check(wire.hex() == vector["wire"], f"{name}: encoded {wire.hex()} != {vector['wire']}")
        wire = bytes.fromhex(vector["wire"])
        check(p.Frame.from_bytes(wire) == frame, name + ": from_bytes differs")
        check(p.BY_NAME[vector["type"]].from_bytes(wire) == frame, name + ": type's from_bytes differs")
        check(frame.is_reply == (frame.TYPE >= 0x80), name + ": is_reply")
        whole = p.Decoder()
        check(whole.feed(wire) == [frame], name + ": Decoder.feed(whole) differs")
        one = p.Decoder()
        got = []
        for b in wire:
            got += one.feed(bytes((b,)))
        check(got == [frame], name + ": Decoder byte at a time differs")
        check(one.frames == 1 and one.dropped == 0, name + ": counters")
    print(f"frames {len(vectors)} checked")
    return frames


COUNTERS = ("frames", "bad_cobs", "bad_crc", "too_long", "too_short", "unknown_type", "malformed")


def counters_line(d):
    c = d.counters()
    return " ".join([k + "=" + str(c[k]) for k in COUNTERS])


def check_bad(p, cases):
    for case in cases:
        wire = bytes.fromhex(case["wire"])
        d = p.Decoder()
        got = d.feed(wire)
        c = d.counters()
        check(got == [], case["name"] + ": decoded a frame from a bad one")
        for k in COUNTERS:
            want = 1 if k == case["counter"] else 0
            check(c[k] == want, f"{case['name']}: {k}={c[k]}, expected {want}")
        try:
            p.Frame.from_bytes(wire)
            fail(case["name"] + ": from_bytes accepted it")
        except p.ProtocolError:
            pass
    print(f"bad {len(cases)} checked")


def lcg(state):
    return (state * 1103515245 + 12345) & 0x7FFFFFFF


STREAM_BYTES = 10000


def check_stream(p, vectors, frames, stream):
    """Valid frames, corrupted frames and garbage, mixed by a fixed LCG; fed in odd chunks and
    byte by byte. Frames are compared as they come, to keep the heap small."""
    state = 20270315
    used = 0
    expected = []
    while True:
        state = lcg(state)
        kind = (state >> 16) % 4
        state = lcg(state)
        j = (state >> 16) % len(vectors)
        wire = bytearray(bytes.fromhex(vectors[j]["wire"]))
        if kind == 0:
            state = lcg(state)
            garbage = bytearray((state >> 16) % 48)
            for k in range(len(garbage)):
                state = lcg(state)
                garbage[k] = (state >> 16) & 0xFF
            wire = garbage
        elif kind == 1:
            state = lcg(state)
            pos = 1 + (state >> 16) % (len(wire) - 2)
            state = lcg(state)
            wire[pos] ^= 1 + (state >> 16) % 255
        if used + len(wire) > len(stream):
            break
        stream[used : used + len(wire)] = wire
        used += len(wire)
        if kind > 1:
            expected.append(j)
    stream = memoryview(stream)[:used]
    counts = []
    for mode in ("chunks", "bytes"):
        d = p.Decoder()
        matched = 0
        digest = 0xFFFF
        i = 0
        while i < len(stream):
            if mode == "bytes":
                n = 1
            else:
                state = lcg(state)
                n = 1 + (state >> 16) % 64
            for frame in d.feed(stream[i : i + n]):
                if matched < len(expected) and frame == frames[expected[matched]]:
                    matched += 1
                    digest = p.crc16(frame.to_raw(), digest)
                else:
                    fail(f"stream ({mode}): decoded a frame that was not sent intact: {frame.to_bytes().hex()}")
            i += n
        check(matched == len(expected), f"stream ({mode}): {matched} frames decoded, {len(expected)} sent intact")
        counts.append(counters_line(d))
    check(counts[0] == counts[1], "stream: counters differ between chunks and single bytes")
    print(f"stream bytes={len(stream)} {counts[0]} digest={digest:04x}")


def check_helpers(p):
    dup = p.DuplicateFilter()
    call = p.Call(16, 8, p.CALL_NEW, "B023", "3")
    ack = p.Ack(16, 8).to_bytes()
    check(dup.replay(call) is None, "dup: first CALL is new")
    dup.remember(call, ack)
    check(dup.replay(call) == ack, "dup: a retried CALL gets the same reply")
    check(dup.repeats == 1, "dup: repeats counted")
    check(dup.replay(p.Call(16, 9, p.CALL_NEW, "B024", "3")) is None, "dup: next seq is new")
    check(dup.replay(p.Chime(16, 8, p.TONE_CALL)) is None, "dup: same seq, other type is new")
    check(dup.replay(p.Identify(16, 8)) is None, "dup: IDENTIFY is always new")
    check(dup.replay(call) is None, "dup: IDENTIFY forgets the last request")

    q = p.EventQueue(5, capacity=2)
    check(q.push(p.Key, p.KEY_CALL_NEXT, 0) == 1, "queue: first event is 1")
    check(q.push(p.Key, p.KEY_DONE, 0) == 2, "queue: second event is 2")
    check(q.push(p.Key, p.KEY_PAUSE, 0) == 0 and q.overflows == 1, "queue: full refuses")
    check(q.answer(p.Poll(5, 10, 0)) == p.Key(5, 10, 1, p.KEY_CALL_NEXT), "queue: oldest first")
    check(q.answer(p.Poll(5, 11, 0)) == p.Key(5, 11, 1, p.KEY_CALL_NEXT), "queue: resent until acknowledged")
    check(q.answer(p.Poll(5, 12, 1)) == p.Key(5, 12, 2, p.KEY_DONE), "queue: ack drops it")
    check(q.answer(p.Poll(5, 13, 2)) == p.Ack(5, 13), "queue: empty answers ACK")
    check(len(q) == 0, "queue: empty")
    try:
        q.push(p.Key, 9, 0)
        fail("queue: a bad key was queued")
    except p.ProtocolError:
        pass
    check(q.push(p.ButtonPress, 3) == 3, "queue: a refused push uses no number")

    t = p.EventTracker()
    check(t.accept(1) and not t.accept(1) and t.accept(2) and t.ack == 2, "tracker: accepts each event once")
    t.reset()
    check(t.ack == 0 and t.accept(2), "tracker: reset on HELLO")
    check(p.next_ev(255) == 1 and p.next_ev(0) == 1 and p.next_seq(255) == 0, "wrap of ev and seq")
    check([p.retry_delay_ms(n) for n in (1, 2, 3)] == [10, 20, 40], "retry back-off doubles")
    try:
        p.retry_delay_ms(p.MAX_RETRIES + 1)
        fail("retry_delay_ms past MAX_RETRIES")
    except p.ProtocolError:
        pass
    print("helpers checked")


main()

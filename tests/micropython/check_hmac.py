# ruff: noqa: E402, UP031 -- MicroPython scripts: imports follow the sys.path setup; %-format
"""fw_update.Hmac under MicroPython (no hmac module, no sha256.copy()): HMAC-SHA256 of each case
in CASES_FILE (JSON: key, data, expected MAC as hex; the message fed in `chunk`-byte pieces, as
FW_CHUNKs feed it), which tests/test_firmware.py fills with RFC 4231's test cases and random
ones whose MAC CPython's hmac computed. Also `same`, the comparison of MACs.
    micropython -X heapsize=192K check_hmac.py FIRMWARE_DIR CASES_FILE"""

import json

from fwcheck import check, equal, finish, setup

cases_file = setup()
from fw_update import Hmac, hmac_sha256, same

with open(cases_file) as f:
    cases = json.load(f)
for case in cases:
    key, data, want = bytes.fromhex(case["key"]), bytes.fromhex(case["data"]), bytes.fromhex(case["mac"])
    h = Hmac(key)
    step = case["chunk"]
    for i in range(0, len(data), step):
        h.update(data[i : i + step])
    got = h.digest()
    equal(got[: len(want)], want, "%s (streamed in %d-byte chunks)" % (case["name"], step))
    equal(hmac_sha256(key, data)[: len(want)], want, "%s (at once)" % case["name"])
check(same(b"abc", b"abc") and not same(b"abc", b"abd") and not same(b"abc", b"ab"), "same()")
print("hmac checked: %d cases" % len(cases))
finish()

"""Central's cores without a broker: the partition of offices over workers, one office's state
(each event applied once and in order whatever the delivery, gaps asked for, estimates batched,
ticket topics cleared, the same estimates after a restore), and one worker on a real SQLite
store fed messages directly (malformed payloads and a flooding office stop nobody else)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from central import worker as worker_module
from central.learning import fallback
from central.office_state import MAX_DELAY_S, QUIET_S, REFRESH_S, REPLAY_RETRY_S, OfficeState
from central.partition import Partition, worker_of
from central.store import open_store
from central.worker import CentralWorker, WorkerConfig
from office import mqtt
from office.waittime import Floor
from office.waittime import records as r
from tests.central_support import KeptOutbox, day_records, example, oizumi_day
from tests.conftest import ROOT

OFFICE = "oizumi"
OFFICES = [f"ward-{n:03d}" for n in range(200)] + ["oizumi", "nerima", "a", "z9-x"]


# -- the partition ------------------------------------------------------------------------------
def test_the_owner_is_crc32_modulo_the_workers() -> None:
    for n in (1, 2, 3, 8):
        for office in OFFICES:
            assert worker_of(office, n) == zlib.crc32(office.encode()) % n
    assert (worker_of("oizumi", 2), worker_of("nerima", 2)) == (1, 0)  # the two-worker test has one on each


@pytest.mark.parametrize("workers", [1, 2, 3, 5, 8])
def test_every_office_lands_on_exactly_one_worker(workers: int) -> None:
    parts = [Partition(i, workers) for i in range(workers)]
    for office in OFFICES:
        owners = [p.index for p in parts if p.owns(office)]
        assert owners == [worker_of(office, workers)]
    # ...and the offices spread over all of them.
    assert {worker_of(o, workers) for o in OFFICES} == set(range(workers))


def test_the_partition_is_the_same_in_every_process() -> None:
    """Python's hash() is salted per process; the partition must not be."""
    code = "from central.partition import worker_of; import sys; print([worker_of(o, 7) for o in sys.argv[1:]])"
    answers = set()
    for seed in ("1", "2", "random"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", code, *OFFICES[:50]], env=env, cwd=ROOT, capture_output=True, text=True, check=True
        )
        answers.add(done.stdout.strip())
    assert answers == {str([worker_of(o, 7) for o in OFFICES[:50]])}


def test_bad_partitions_are_refused() -> None:
    with pytest.raises(ValueError, match="workers must be 1 or more"):
        worker_of("oizumi", 0)
    with pytest.raises(ValueError, match="worker index must be 0…1"):
        Partition(2, 2)


# -- one office's state -------------------------------------------------------------------------
class RecordingFloor(Floor):
    """The predictor's floor, noting the seq of every event applied to it."""

    def __init__(self) -> None:
        super().__init__()
        self.seqs: list[int | None] = []

    def apply(self, e: r.Event) -> None:
        self.seqs.append(e.seq)
        super().apply(e)


class Stored:
    """The store as an OfficeState sees it: records by seq, read back in order."""

    def __init__(self) -> None:
        self.records: dict[int, Mapping[str, Any]] = {}

    def add(self, records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        batch = list(records)
        for record in batch:
            self.records.setdefault(record["seq"], record)
        return batch

    def read(self, first: int, last: int) -> Iterable[Mapping[str, Any]]:
        return [self.records[s] for s in sorted(self.records) if first <= s <= last]


def fresh_state(applied: int = 0) -> OfficeState:
    return OfficeState(OFFICE, fallback(), applied=applied, floor=RecordingFloor())


def sends(state: OfficeState, now: float) -> dict[str, bytes]:
    out: dict[str, bytes] = {}

    def send(topic: str, payload: bytes) -> bool:
        out[topic] = payload
        return True

    state.publish_estimates(now, send)
    return out


@settings(max_examples=60)
@given(data=st.data())
def test_each_event_is_applied_once_and_in_seq_order_whatever_the_delivery(data: st.DataObject) -> None:
    records = list(oizumi_day()[:40])
    order = data.draw(st.permutations(records), label="order")
    repeats = data.draw(st.lists(st.sampled_from(records), max_size=15), label="repeats")
    arrivals = data.draw(st.permutations(order + repeats), label="arrivals")
    cuts = sorted(data.draw(st.lists(st.integers(0, len(arrivals)), max_size=8), label="cuts"))
    state, store = fresh_state(), Stored()
    for a, b in zip([0, *cuts], [*cuts, len(arrivals)], strict=True):
        state.take(store.add(arrivals[a:b]), 0.0, store.read)
        assert state.applied == (state.seqs.last or 0)  # applied exactly as far as contiguous
    assert isinstance(state.floor, RecordingFloor)
    assert state.floor.seqs == list(range(1, 41))
    assert state.applied == 40 and state.missing == []
    assert state.figures.duplicates == len(repeats)


def test_a_gap_is_asked_for_once_and_again_only_when_nothing_comes() -> None:
    records = oizumi_day()[:30]
    state, store = fresh_state(), Stored()
    t = 100.0
    state.take(store.add(records[:10]), t, store.read)
    assert state.replay_due(t) is None  # nothing missing
    state.take(store.add(records[11:20]), t, store.read)  # seq 11 lost on the way
    assert (state.applied, state.missing) == (10, [(11, 11)])
    assert state.replay_due(t) == 11
    assert state.replay_due(t + 1) is None  # asked; the answer is on its way
    state.take(store.add(records[20:25]), t + 2, store.read)  # live events keep coming, held past the gap
    assert state.replay_due(t + REPLAY_RETRY_S - 1) is None
    assert state.replay_due(t + REPLAY_RETRY_S + 1) == 11  # nothing applied since the ask: asked again
    state.take(store.add(records[10:12]), t + 20, store.read)  # the replay: 11 (and 12 again)
    assert state.applied == 25 and state.missing == []
    assert isinstance(state.floor, RecordingFloor) and state.floor.seqs == list(range(1, 26))
    assert state.replay_due(t + 40) is None


def test_a_replay_that_brings_events_is_not_asked_for_again() -> None:
    records = oizumi_day()[:300]
    state, store = fresh_state(), Stored()
    state.take(store.add(records[:10]), 0.0, store.read)
    state.gateway(True, 300, retained=False, now=0.0)
    assert state.replay_due(0.0) == 11
    for n, record in enumerate(records[10:], 1):  # the replay streams in, one event every 0.1 s
        state.take(store.add([record]), n / 10, store.read)
        assert state.replay_due(n / 10) is None
    assert state.applied == 300 and state.missing == []


def test_a_birth_naming_a_later_seq_asks_from_the_next_one() -> None:
    state, store = fresh_state(), Stored()
    state.take(store.add(oizumi_day()[:5]), 0.0, store.read)
    state.gateway(True, 9, retained=False, now=1.0)
    assert state.missing == [(6, 9)] and state.replay_due(1.0) == 6
    state.gateway(False, None, retained=False, now=2.0)  # offline: a command would be lost
    assert state.replay_due(100.0) is None
    state.gateway(True, 9, retained=True, now=101.0)  # born again: asked at once
    assert state.replay_due(101.0) == 6


def test_a_retained_birth_probes_for_what_followed_even_with_nothing_missing() -> None:
    state, store = fresh_state(), Stored()
    state.take(store.add(oizumi_day()[:5]), 0.0, store.read)
    state.gateway(True, 3, retained=True, now=1.0)  # an old birth: the gateway may have more by now
    assert state.missing == [] and state.replay_due(1.0) == 6
    assert state.replay_due(2.0) is None


def test_seqs_the_gateway_pruned_are_given_up() -> None:
    records = oizumi_day()
    state, store = fresh_state(), Stored()
    state.take(store.add(records[20:30]), 0.0, store.read)  # central joined late: 1-20 missing
    assert state.missing == [(1, 20)] and state.replay_due(0.0) == 1
    state.pruned(21, 1.0, store.read)  # the gateway keeps nothing before 21
    assert state.applied == 30 and state.missing == []


def test_estimates_are_batched_not_recomputed_per_event() -> None:
    records = oizumi_day()
    state, store = fresh_state(), Stored()
    t = 0.0
    for record in records[:50]:  # a steady stream, 50 ms apart
        state.take(store.add([record]), t, store.read)
        assert not state.estimates_due(t) or t >= MAX_DELAY_S
        t += 0.05
    assert state.estimates_due(t)  # a second has passed since the first change
    assert sends(state, t)
    assert not state.estimates_due(t + 10)  # nothing new since
    state.take(store.add(records[50:52]), t + 20, store.read)  # a burst: two events at once
    assert not state.estimates_due(t + 20 + QUIET_S / 2)
    assert state.estimates_due(t + 20 + QUIET_S)  # the burst has ended


def test_no_estimates_while_events_are_missing() -> None:
    records = oizumi_day()
    state, store = fresh_state(), Stored()
    state.take(store.add(records[:10]), 0.0, store.read)
    state.take(store.add(records[11:20]), 0.0, store.read)
    assert not state.estimates_due(100.0) and state.due_at() is None
    state.take(store.add(records[10:11]), 100.0, store.read)
    assert state.estimates_due(101.0)


def test_a_ticket_has_a_topic_while_it_waits_and_is_cleared_when_called() -> None:
    records = oizumi_day()
    first_issue = next(i for i, rec in enumerate(records) if rec["type"] == "ticket_issued")
    issued = records[first_issue]
    called = next(i for i, rec in enumerate(records) if rec["type"] == "called" and rec["ticket"] == issued["ticket"])
    topic = mqtt.topic(OFFICE, mqtt.TICKETS, issued["token_hash"])
    state, store = fresh_state(), Stored()
    state.take(store.add(records[: first_issue + 1]), 0.0, store.read)
    out = sends(state, 10.0)
    payload = mqtt.decode(out[topic])
    assert payload["ticket"] == issued["ticket"] and payload["token_hash"] == issued["token_hash"]
    assert payload["issued_ts"] == issued["ts"] and payload["seq"] == first_issue + 1
    assert payload["p10_s"] <= payload["mean_s"] <= payload["p90_s"]
    services = {t for t in out if "/estimates/" in t}
    assert services == {mqtt.topic(OFFICE, mqtt.ESTIMATES, s) for s in ("certificate", "move", "payment", "seal")}
    assert sends(state, 20.0) == {}  # nothing changed: nothing again
    state.take(store.add(records[first_issue + 1 : called + 1]), 30.0, store.read)
    assert sends(state, 40.0)[topic] == b""  # called: cleared
    assert topic not in state.tickets


def test_service_estimates_follow_the_seq_and_are_refreshed() -> None:
    records = oizumi_day()
    state, store = fresh_state(), Stored()
    state.take(store.add(records[:100]), 0.0, store.read)
    first = sends(state, 1.0)
    services = {t for t in first if "/estimates/" in t}
    recall = next(i for i, rec in enumerate(records) if i >= 100 and rec["type"] == "recalled")
    state.take(store.add(records[100 : recall + 1]), 2.0, store.read)
    again = sends(state, 3.0)
    assert services <= set(again)  # the seq moved: every service's estimate again, at that seq
    assert {mqtt.decode(again[t])["seq"] for t in services} == {recall + 1}
    assert state.refresh(3.0 + REFRESH_S - 1, lambda t, p: True) == 0
    refreshed: dict[str, bytes] = {}
    assert state.refresh(3.0 + REFRESH_S, lambda t, p: refreshed.setdefault(t, p) is p) == len(services)
    assert refreshed == {t: again[t] for t in services}  # the same payloads, once a minute


def test_ticket_topics_left_from_before_are_cleared_or_published_again() -> None:
    records = oizumi_day()[:40]
    state, store = fresh_state(), Stored()
    state.take(store.add(records), 0.0, store.read)
    gone = mqtt.topic(OFFICE, mqtt.TICKETS, "f" * 64)  # a ticket estimate retained from a past run
    state.retained_ticket(gone, 1.0)
    out = sends(state, 2.0)
    assert out[gone] == b""
    waiting = {t for t, p in out.items() if "/tickets/" in t and p}
    state.forget_published(3.0)  # reconnected: what reached the broker is not known
    again = sends(state, 4.0)
    assert {t for t, p in again.items() if "/tickets/" in t and p} == waiting


def test_a_restored_office_publishes_the_same_estimates() -> None:
    records = oizumi_day()
    cut = 400
    state, store = fresh_state(), Stored()
    state.take(store.add(records[:cut]), 0.0, store.read)
    before = sends(state, 5.0)
    restored = OfficeState.restore(OFFICE, fallback(), cut, (), records[:cut], now=0.0)
    assert restored.applied == cut and restored.floor.day == "2027-03-15"
    assert sends(restored, 5.0) == before


def test_a_new_day_starts_afresh_and_asks_for_training() -> None:
    config = example("oizumi")
    monday = day_records(config)
    tuesday = day_records(config, monday_plus(1), first_seq=len(monday) + 1)
    state, store = fresh_state(), Stored()
    state.take(store.add(monday), 0.0, store.read)
    state.new_day = False
    sends(state, 1.0)
    state.take(store.add(tuesday[:1]), 2.0, store.read)
    assert state.new_day and state.floor.day == "2027-03-16"
    out = sends(state, 3.0)
    assert all(p == b"" for t, p in out.items() if "/tickets/" in t)  # Monday's leftovers cleared


def monday_plus(days: int) -> Any:
    from datetime import timedelta

    from tests.central_support import MONDAY

    return MONDAY + timedelta(days=days)


# -- one worker, fed directly -------------------------------------------------------------------
def events_topic(office: str) -> str:
    return mqtt.topic(office, mqtt.EVENTS)


def test_malformed_payloads_are_logged_and_dropped_and_stop_no_other_office(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker_module, "PROBLEM_EVERY_S", 0.0)  # every problem logged, not one per 10 s
    config = example("oizumi")
    a = day_records(config, office="ward-a")[:60]
    b = day_records(config, office="ward-b", seed=2)[:60]
    out = KeptOutbox()
    worker = CentralWorker(WorkerConfig(str(tmp_path / "central.db"), train=False), outbox=out)
    worker.start()
    try:
        bad = [
            b"\xff not json",
            b"[1, 2]",
            mqtt.encode({**a[5], "office": "ward-b"}),  # another office's
            mqtt.encode({**a[6], "seq": "seven"}),
            mqtt.encode({**a[7], "ts": "yesterday"}),
            mqtt.encode({**a[8], "type": "called"}),  # seq 9 again, different: conflicts once 9 is stored
        ]
        with caplog.at_level(logging.WARNING, logger="central"):
            for i in range(60):
                worker.deliver(events_topic("ward-a"), mqtt.encode(a[i]))
                worker.deliver(events_topic("ward-b"), mqtt.encode(b[i]))
                if i == 10:
                    for payload in bad:
                        worker.deliver(events_topic("ward-a"), payload)
            worker.drain()
        with open_store(tmp_path / "central.db") as store:
            assert (store.contiguous_seq("ward-a"), store.last_seq("ward-a")) == (60, 60)
            assert (store.contiguous_seq("ward-b"), store.last_seq("ward-b")) == (60, 60)
            assert list(store.read("ward-a", 9, 9)) == [a[8]]  # the first version stays
        assert worker.offices["ward-a"].applied == 60 and worker.offices["ward-b"].applied == 60
        assert any(t.startswith("counterfloor/ward-b/estimates/") for t in out.retained)
        assert any(t.startswith("counterfloor/ward-a/estimates/") for t in out.retained)
        text = caplog.text
        assert "counterfloor/ward-a/events: payload is not JSON" in text
        assert "counterfloor/ward-a/events: a record dropped" in text
        assert "counterfloor/ward-a/events: seq 9 dropped" in text
        assert "ward-b" not in "".join(m for m in caplog.messages if "dropped" in m and "ward-a/" not in m)
    finally:
        worker.close()


def test_a_flooding_office_loses_its_excess_and_delays_no_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker_module, "QUEUE_LIMIT", 100)
    monkeypatch.setattr(worker_module, "BATCH", 50)
    config = example("oizumi")
    flood = day_records(config, office="ward-flood")[:300]
    quiet = day_records(config, office="ward-quiet", seed=3)[:5]
    out = KeptOutbox()
    worker = CentralWorker(WorkerConfig(str(tmp_path / "central.db"), train=False), outbox=out)
    worker.start()
    try:
        for record in flood:
            worker.deliver(events_topic("ward-flood"), mqtt.encode(record))
        for record in quiet:
            worker.deliver(events_topic("ward-quiet"), mqtt.encode(record))
        worker.turn(worker.clock())  # one turn: the quiet office is served in it
        assert worker.offices["ward-quiet"].applied == 5
        assert worker.offices["ward-flood"].applied == 50  # one batch of it
        worker.drain()
        flooding = worker.offices["ward-flood"]
        assert flooding.applied == 100  # the first QUEUE_LIMIT; the rest was dropped
        worker.deliver(events_topic("ward-flood"), mqtt.encode(flood[-1]))  # a later event shows the gap
        worker.drain()
        assert flooding.missing == [(101, 299)]
        assert [c["from_seq"] for c in out.commands()] == [101]  # a replay from the first dropped
    finally:
        worker.close()


def test_a_change_of_worker_count_keeps_every_office_on_a_folder_store(tmp_path: Path) -> None:
    """Two workers on a folder store (a SQLite file per office), then three: every office is
    rebuilt, whole, by its new owner alone, from the file its old owner wrote — nothing moved."""
    url = f"{tmp_path}/central/"
    config = example("oizumi")
    names = ["oizumi", "nerima", "a", "ward-001", "ward-007", "ward-008"]
    days = {name: day_records(config, office=name, seed=n + 1)[:40] for n, name in enumerate(names)}
    assert {worker_of(o, 2) for o in names} == {0, 1} and {worker_of(o, 3) for o in names} == {0, 1, 2}
    two = [CentralWorker(WorkerConfig(url, i, 2, train=False), outbox=KeptOutbox()) for i in range(2)]
    try:
        for worker in two:
            worker.start()
        for i in range(40):
            for name in names:  # every worker is handed every office's events, as the broker does
                for worker in two:
                    worker.deliver(events_topic(name), mqtt.encode(days[name][i]))
        for worker in two:
            worker.drain()
        assert [sorted(w.offices) for w in two] == [sorted(o for o in names if worker_of(o, 2) == i) for i in (0, 1)]
    finally:
        for worker in two:
            worker.close()
    assert sorted(p.name for p in (tmp_path / "central").glob("*.sqlite")) == sorted(f"{o}.sqlite" for o in names)
    three = [CentralWorker(WorkerConfig(url, i, 3, train=False), outbox=KeptOutbox()) for i in range(3)]
    try:
        for worker in three:
            worker.start()
        for i, worker in enumerate(three):
            assert sorted(worker.offices) == sorted(o for o in names if worker_of(o, 3) == i)
            for state in worker.offices.values():
                assert (state.applied, state.missing, state.floor.day) == (40, [], "2027-03-15")
        with open_store(url) as store:
            for name in names:
                assert list(store.read(name)) == days[name]
        # A replacement gateway's copy of today comes from the office's file, by its new owner.
        owner = three[worker_of("oizumi", 3)]
        owner.deliver(mqtt.topic("oizumi", mqtt.RESTORE), mqtt.encode(mqtt.restore_request("oizumi", "r-1")))
        owner.turn(owner.clock())
        outbox = owner.outbox
        assert isinstance(outbox, KeptOutbox)
        parts = [mqtt.parse_restore_part("oizumi", "r-1", p) for t, p, _ in outbox.sent if t.endswith("/restored/r-1")]
        assert [r for part in parts for r in part.records] == [
            {k: v for k, v in r.items() if k != "session"} for r in days["oizumi"]
        ]
        assert parts[0].error is None
    finally:
        for worker in three:
            worker.close()


def test_the_learned_forecast_reads_a_folder_store(tmp_path: Path) -> None:
    """The public page's forecaster opens the store by its URL in its own thread and reads each
    office's history: from the office's file in a folder store."""
    from datetime import date, datetime

    from central.web.learned_forecast import LearnedForecaster
    from counterfloor.demo_floor import open_days_before
    from counterfloor.simulate import record_day
    from office import events as ev
    from tests.conftest import TOKYO

    config = example("nerima")
    day = date(2027, 3, 8)
    url = f"{tmp_path}/central/"
    seq = 0
    with open_store(url) as store:
        for past in open_days_before(config, day, 5):
            records = []
            for event in record_day(config, past, seed=past.toordinal()).events:
                seq += 1
                records.append({**ev.public_record(event, config.id), "seq": seq, "session": 1})
            store.append(config.id, records)
    assert [p.name for p in (tmp_path / "central").glob("*.sqlite")] == ["nerima.sqlite"]
    forecaster = LearnedForecaster(url, {config.id: config}, now=lambda c: datetime(2027, 3, 8, 9, 30, tzinfo=TOKYO))
    forecaster.learn()
    hours = forecaster.hourly(config.id, "certificate", day)
    assert len(hours) >= 8 and any(h.wait_s > 0 for h in hours)


def test_a_bad_store_folder_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import run_cli

    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "central.db").write_bytes(b"")
    cases = [
        (f"{tmp_path}/no/such/", "event store folder", "cannot create it: its parent folder does not exist"),
        (f"sqlite://{tmp_path}/old/", f"event store folder {tmp_path}/old", "not a central store folder"),
    ]
    for store, where, message in cases:
        status, _, err = run_cli(capsys, "central", "--broker", "mqtt://h", "--store", store)
        assert status == 1
        assert err.startswith(f"counterfloor central: {where}") and message in err and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["central.db", "old"]


# -- the command's arguments ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["--broker", "http://x"], 2, "--broker: not a broker URL like mqtt://host:1883"),
        (["--broker", "mqtt://h", "--workers", "0"], 2, "--workers must be 1-64 (got 0)"),
        (["--broker", "mqtt://h", "--workers", "2", "--run-workers", "1-2"], 2, "'1-2' is not within 0-1"),
        (["--broker", "mqtt://h", "--run-workers", "x"], 2, "'x' is not an index or a range like 0-3"),
        (["--broker", "mqtt://h", "--history-days", "-1"], 2, "--history-days must be 0 or more"),
        (["--broker", "mqtt://h", "--store", "postgresql://u@h:99999/db"], 2, "the port must be 1-65535"),
        (["--broker", "mqtt://h", "--store", "/no/such/folder/central.db"], 1, "cannot open"),
        (["--broker", "mqtt://h", "--broker-auth", "/no/such/secret"], 2, "broker secret /no/such/secret"),
        ([], 2, "the following arguments are required: --broker"),
        (["--broker", "mqtt://h", "--http-port", "0", "--push-key", "/tmp/k.pem"], 2, "needs --push-contact"),
        (["--broker", "mqtt://h", "--http-port", "0", "--push-contact", "mailto:a@b.jp"], 2, "needs --push-key"),
        (
            [
                "--broker",
                "mqtt://h",
                "--http-port",
                "0",
                "--push-key",
                "/no/such/dir/k.pem",
                "--push-contact",
                "mailto:a@b.jp",
            ],
            2,
            "/no/such/dir/k.pem",
        ),
    ],
)
def test_bad_arguments_are_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], code: int, message: str
) -> None:
    from tests.conftest import run_cli

    status, _, err = run_cli(capsys, "central", *argv)
    assert status == code
    assert err.startswith("counterfloor central: ") and message in err and err.count("\n") == 1, err


def test_run_workers_takes_ranges_and_lists() -> None:
    from counterfloor.central_cli import parse_indexes

    assert parse_indexes(None, 3) == [0, 1, 2]
    assert parse_indexes("0-2,5", 8) == [0, 1, 2, 5]
    assert parse_indexes("3", 4) == [3]


def test_the_help_names_the_default_store(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import run_cli

    status, out, _ = run_cli(capsys, "central", "--help")
    assert status == 0 and "default: central.db in the working directory" in " ".join(out.split())


def test_the_systemd_unit_runs_a_real_command() -> None:
    import configparser
    import shlex

    from counterfloor.cli import build_parser

    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(ROOT / "deploy" / "counterfloor-central.service")
    argv = shlex.split(unit["Service"]["ExecStart"])
    assert argv[0].endswith("/counterfloor")
    args = build_parser().parse_args(argv[1:])
    assert args.command == "central" and args.store == "sqlite:///var/lib/counterfloor-central/central.db"
    assert unit["Service"]["KillMode"] == "mixed"  # the supervisor stops its workers itself

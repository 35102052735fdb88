"""The classical check of a wait predictor: in a stationary M/M/s queue with the true parameters,
the queue-length predictor — a customer finding q others waiting will wait (q + 1)/(sμ) — has,
over the customers who wait, a mean squared error equal to (1 − ρ) times the square of their mean
wait. (A waiting customer's wait is a sum of q + 1 exponential gaps of rate sμ, q geometric with
ratio ρ: MSE = E[q + 1]/(sμ)² = 1/((1 − ρ)(sμ)²), mean wait = 1/((1 − ρ)sμ).)

The queue is simulated here, small and exact: FCFS, so each customer starts at the later of its
arrival and the earliest free server. The interval is honest: the customers' waits are
correlated, so the estimate's error comes from batch means of long batches (a jackknife over
them), not from the customers as if independent. And the same figures come out of the event log
and office.waittime.score."""

from __future__ import annotations

import heapq
import math
import random
from collections import deque

import pytest

from office.waittime.predictors import Prediction
from office.waittime.records import read_record
from office.waittime.replay import Issued
from office.waittime.score import score, true_waits


def simulate(lam: float, mu: float, s: int, customers: int, seed: int) -> list[tuple[float, int, float, float]]:
    """(arrival, others waiting at arrival, wait, service) of each customer, after a warm-up."""
    rng = random.Random(seed)
    free = [0.0] * s  # when each server is next free
    starts: deque[float] = deque()  # start times of the customers who arrived and are waiting or due
    out = []
    t = 0.0
    warm = customers // 20
    for n in range(customers + warm):
        t += rng.expovariate(lam)
        while starts and starts[0] <= t:
            starts.popleft()
        ahead = len(starts)
        start = max(t, heapq.heappop(free))
        service = rng.expovariate(mu)
        heapq.heappush(free, start + service)
        if start > t:
            starts.append(start)
        if n >= warm:
            out.append((t, ahead, start - t, service))
    return out


def _ratio(rows: list[tuple[int, float]], s: int, mu: float) -> tuple[float, float, float]:
    """(Σ squared error, Σ wait, number) of the queue-length predictor over customers who wait."""
    sq = total = 0.0
    n = 0
    for ahead, wait in rows:
        if wait > 0.0:
            e = (ahead + 1) / (s * mu) - wait
            sq += e * e
            total += wait
            n += 1
    return sq, total, n


@pytest.mark.parametrize(("s", "rho"), [(3, 0.75), (1, 0.6)])
def test_the_queue_length_predictor_s_error_is_one_minus_rho(s: int, rho: float) -> None:
    mu = 1.0
    lam = rho * s * mu
    customers = simulate(lam, mu, s, 240_000, seed=20270315 + s)
    batches = 24
    size = len(customers) // batches
    sums = [_ratio([(q, w) for _, q, w, _ in customers[b * size : (b + 1) * size]], s, mu) for b in range(batches)]
    sq, total, n = (sum(x[k] for x in sums) for k in range(3))

    def ratio(sq: float, total: float, n: float) -> float:
        return (sq / n) / (total / n) ** 2

    estimate = ratio(sq, total, n)
    # Jackknife over batches: leave one batch out at a time.
    leave_out = [ratio(sq - a, total - b, n - c) for a, b, c in sums]
    mean_out = sum(leave_out) / batches
    se = math.sqrt((batches - 1) / batches * sum((x - mean_out) ** 2 for x in leave_out))
    t_99 = 2.807  # Student t, 23 degrees of freedom, two-sided 99 %
    assert se < 0.02  # a check with a point: the interval is narrow
    assert abs(estimate - (1 - rho)) <= t_99 * se, (estimate, 1 - rho, se)


def test_the_same_figures_come_out_of_the_event_log_and_the_scorer() -> None:
    """M/M/1 customers as an event log (issue, call, serve), scored by office.waittime.score."""
    s, mu, lam = 1, 1 / 12, 0.7 / 12  # seconds: services of 12 s on average, ρ = 0.7, within a day
    customers = simulate(lam, mu, s, 1000, seed=7)
    records = []
    origin = 8 * 3600.0
    moments: list[tuple[float, str, str]] = []
    for n, (arrival, _, wait, service) in enumerate(customers):
        tid = f"A-{n:05d}"
        moments += [
            (arrival, "ticket_issued", tid),
            (arrival + wait, "called", tid),
            (arrival + wait + service, "served", tid),
        ]
    moments.sort(key=lambda m: (m[0], m[1] != "served"))  # a counter serves its ticket before it calls the next
    base = customers[0][0] - 60
    for seq, (at, type_, tid) in enumerate(moments, 1):
        clock = origin + at - base
        ts = f"2027-03-15T{int(clock // 3600):02d}:{int(clock % 3600 // 60):02d}:{clock % 60:06.3f}+09:00"
        fields = {"service": "a", "number": seq} if type_ == "ticket_issued" else {"counter": "1"}
        records.append({"v": 1, "seq": seq, "ts": ts, "office": "mm1", "type": type_, "ticket": tid, **fields})
    events = [e for rec in records if (e := read_record(rec)) is not None]
    waits = true_waits(events)
    rows = []
    issued = {rec["ticket"]: rec["ts"] for rec in records if rec["type"] == "ticket_issued"}
    for n, (_, ahead, wait, _) in enumerate(customers):
        guess = (ahead + 1) / (s * mu) if wait > 0 else 0.0
        rows.append(Issued(f"A-{n:05d}", "a", issued[f"A-{n:05d}"], Prediction(guess, guess, guess)))
    report = score(rows, waits).all
    sq = sum((((ahead + 1) / (s * mu) if w > 0 else 0.0) - w) ** 2 for _, ahead, w, _ in customers)
    assert report.n == len(customers)
    assert report.mse == pytest.approx(sq / len(customers), rel=1e-3)  # the log keeps milliseconds
    assert report.mean_wait == pytest.approx(sum(w for _, _, w, _ in customers) / len(customers), rel=1e-3)

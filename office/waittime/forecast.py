"""The expected course of the floor from now: when each waiting ticket will first be called.

Owns the `best` predictor's core, a mean-path simulation of the counters' future. From the floor
as it is (who waits, in which order, for which service; which counter is serving whom and for how
long already; who is paused or closed) and today's plan (each counter's remaining shifts), every
counter is played forward call by call: when it frees it calls the first ticket of the first
service in its priority list that has one (as `office.model` does), taking the expected counter
time of that call (service by service × hour, or the cost of a no-show, whose chance grows with
the ticket's wait), then its turnaround. Higher-priority tickets still to come (expected arrivals
by minute, scaled by how busy today is so far) and tickets that will re-enter ahead (transfers,
returns) take their turn. A counter stops calling at the end of its shift and starts again at its
next one; past its last shift it stays while the other counters could not work off one of its
services' queues before that service's reception ends (staff serve the tickets issued), and if
no counter would ever call a waiting ticket, the ones that stopped last stay on.

Why a single expected path and not Monte-Carlo draws: one pass gives every waiting ticket its
call time (O(calls ahead)), which is what a rush day (hundreds waiting, a prediction per ticket)
and the gateway's ≤ 1 ms budget allow; a draw-based simulation costs that per draw. Draws (8–24
within a budget of calls, times and no-shows drawn, Poisson arrivals) were tried on simulated
days of both example offices: the mean squared error moved by under 2 % for 5–10× the time. The
path's own error (near: which busy counter frees first; at thresholds: whether a counter frees
before its lunch) and the spread around it are measured on past days and corrected by
`office.waittime.calibrate`. Where the path crosses a drop in capacity (a lunch rotation), a
call or two more or less before it moves a call by half an hour, so each target's call is the
average of its service's calls at the places around its own (`_smoothed`).
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Collection, Sequence

from office.waittime.floor import CLOSED, OPEN, WAITING, Floor
from office.waittime.params import MINUTES, WAIT_BUCKET_S, WAIT_BUCKETS, Params, expected_by

INF = math.inf
# Tickets: how much today's own count must weigh before it moves the expected arrivals — the
# office-wide ratio toward 1, a service's toward the office-wide one. A day's crowd differs from
# the average by about a tenth, while a count of 100 tickets by now is itself uncertain by a tenth
# (Poisson), and a service's count far more: with 10 tickets' worth, a busy Saturday morning's
# 20-odd moves read as 1.3–1.5× the day's crowd.
K_LOAD = 100.0
K_LOAD_SERVICE = 100.0
# The uncertainty of a call's place among its service's calls on the path (see `_smoothed`), in
# places: σ² = SPREAD_MIN² + k·cv² + (SPREAD·k)² for the k-th call — which busy counter frees first,
# the k calls' own durations, and the day's pace being a few per cent off the learned one.
SPREAD = 0.08
SPREAD_MIN = 1.0
REACH = 1.5  # the average reads the places within this many sigma (each costs the path a call)


def _time_of(table: Sequence[float], y: float) -> float:
    """The first moment (seconds of the day) at which the cumulative table reaches y."""
    i = bisect.bisect_left(table, y)
    if i > MINUTES:
        return INF
    if i == 0:
        return 0.0
    lo, hi = table[i - 1], table[i]
    return (i - 1 + (y - lo) / (hi - lo)) * 60.0 if hi > lo else i * 60.0


class _Streams:
    """Tickets expected to come, per service, one at a time: the k-th when the expected count
    since now reaches k − ½ (so the count so far is the expected count, rounded). `next` holds
    each service's next moment, read in the hot loop as a plain list."""

    __slots__ = ("base", "factor", "k", "next", "tables")

    def __init__(self, tables: Sequence[Sequence[float]], now: float, factors: list[float]) -> None:
        self.tables = tables
        self.factor = factors
        self.base = [expected_by(t, now) for t in tables]
        self.k = [0] * len(tables)
        self.next = [INF] * len(tables)
        for s, table in enumerate(tables):
            if factors[s] > 0.0 and table[MINUTES] > self.base[s]:
                self.advance(s)

    def advance(self, s: int) -> None:
        k = self.k[s] = self.k[s] + 1
        self.next[s] = _time_of(self.tables[s], self.base[s] + (k - 0.5) / self.factor[s])

    def due(self, s: int, t: float) -> int:
        """How many have come by `t` and not been called yet."""
        if self.next[s] > t:
            return 0
        come = int(self.factor[s] * (expected_by(self.tables[s], t) - self.base[s]) + 0.5)
        return max(0, come - (self.k[s] - 1))


_NONE = [0.0] * (MINUTES + 1)


class Forecaster:
    """Mean-path forecasts of first calls, from the figures learned for the office."""

    def __init__(self, params: Params, *, arrivals: bool = True, spread: float = SPREAD) -> None:
        self.params = params
        self.arrivals = arrivals  # off: only the tickets already there, none to come
        self.spread = spread  # the relative uncertainty of a call's place on the path (0: the path's own moment)

    def load_factor(self, floor: Floor) -> dict[str, float]:
        """Per service, today's tickets so far against an average day's by now (shrunk toward the
        office-wide ratio, which is shrunk toward 1); "" holds the office-wide ratio."""
        params, now = self.params, floor.now
        kind = floor.plan.kind if floor.plan is not None else None
        expected = {sid: expected_by(params.flow(kind, sid)[0], now) for sid in params.services}
        total = sum(expected.values())
        overall = (floor.issued_total + K_LOAD) / (total + K_LOAD)
        k = K_LOAD_SERVICE
        factors = {sid: (floor.issued.get(sid, 0) + k * overall) / (e + k) for sid, e in expected.items()}
        factors[""] = overall
        return factors

    def run(self, floor: Floor, targets: Collection[str]) -> dict[str, float]:
        """The forecast moment (seconds of the day) of each target's first call; INF when no
        counter will call it. Targets that are not waiting are left out."""
        tickets, queues, now = floor.tickets, floor.queues, floor.now
        want = {tid for tid in targets if (t := tickets.get(tid)) is not None and t.status == WAITING}
        out: dict[str, float] = {}
        if not want:
            return out
        params = self.params
        plan = floor.plan
        wake, start_lag = params.wake, params.start_lag

        # Services, numbered: the ones counters call and the ones tickets wait for.
        cids = list(floor.counters)
        if plan is not None:
            cids += [cid for cid in plan.services if cid not in floor.counters]
        names: dict[str, int] = {}
        counter_services: list[tuple[int, ...]] = []
        for cid in cids:
            c = floor.counters.get(cid)
            svc = c.services if c is not None and c.status != CLOSED else ()
            if not svc and plan is not None:
                svc = plan.services.get(cid, ())
            if not svc and c is not None:
                svc = c.services
            counter_services.append(tuple(names.setdefault(s, len(names)) for s in svc))
        for service in queues:
            names.setdefault(service, len(names))
        sids = list(names)
        models = [params.service(s) for s in sids]
        queue_of = [queues.get(s) or [] for s in sids]
        queued = [len(q) for q in queue_of]
        taken = [0] * len(sids)  # tickets of each real queue called so far in the path
        # A call's counter time: (mean by hour, no-show chance by wait, the same requeued, a no-show's,
        # the no-show chance's factor by hour).
        costs = [
            (m.occupation_by_hour, m.p_no_show, m.p_no_show_requeued, m.no_show_occupation, m.no_show_by_hour)
            for m in models
        ]
        if self.arrivals:
            load = self.load_factor(floor)
            factors = [load.get(s, load[""]) for s in sids]
            kind = plan.kind if plan is not None else None
            flows = [params.flow(kind, s) for s in sids]
            arrivals = _Streams([a for a, _ in flows], now, factors)
            jumps = _Streams([j for _, j in flows], now, factors)
        else:
            arrivals = jumps = _Streams([_NONE] * len(sids), now, [0.0] * len(sids))
        arrival_next, jump_next = arrivals.next, jumps.next

        # Counters: their windows of work from now on, and when each is first free.
        heap: list[tuple[float, int]] = []
        windows: list[list[tuple[float, float]]] = []
        overtime: list[bool] = []
        turn: list[float] = []
        for i, cid in enumerate(cids):
            c = floor.counters.get(cid)
            blocks = plan.blocks.get(cid, ()) if plan is not None else ()
            ahead = [(a, b) for a, b in blocks if b > now]
            over = False
            status = c.status if c is not None else CLOSED
            if status == OPEN and c is not None:
                if ahead and ahead[0][0] <= now:
                    wins = ahead
                elif not blocks:  # staff the plan does not know of: on until the day is done
                    wins = [(now, INF)]
                else:
                    ended = max((b for a, b in blocks if b <= now), default=None)
                    finishing = c.current is not None and ended is not None and c.busy_since < ended
                    if finishing:  # its shift is over: it stops after this resident
                        wins = ahead
                    elif ahead:  # opened early, or came back early
                        wins = [(now, ahead[0][1]), *ahead[1:]]
                    else:  # called after its last shift ended: overtime, while it is needed
                        wins, over = [(now, INF)], True
            else:
                wins = [(max(a, now), b) for a, b in ahead]
            tr = params.counter_turnaround(cid)
            windows.append(wins)
            overtime.append(over)
            turn.append(tr)
            if not wins and not (status == OPEN and c is not None and c.current is not None):
                continue
            if status == OPEN and c is not None:
                current = tickets.get(c.current) if c.current is not None else None
                if current is not None:
                    m = params.service(current.service)
                    f = now + m.time_left(now - c.busy_since, c.recalled, int(c.busy_since // 3600)) + tr
                else:
                    f = max(c.free_since + tr, now + wake)
            else:
                f = wins[0][0] + start_lag
            heap.append((f, i))
        heapq.heapify(heap)
        # The window each counter is in: its start and end, cached for the common case.
        first_window = [0] * len(cids)
        window_start = [w[0][0] if w else INF for w in windows]
        window_end = [w[0][1] if w else -INF for w in windows]

        servers: list[list[tuple[int, float]]] = [[] for _ in sids]
        for i, svc_ids in enumerate(counter_services):
            for rank, s in enumerate(svc_ids):
                servers[s].append((i, 1.0 if rank == 0 else 0.5))
        closes = plan.closes if plan is not None and plan.closes is not None else INF
        reception_end = [plan.reception_end.get(sid, closes) if plan is not None else INF for sid in sids]

        def short(i: int, f: float) -> bool:
            """Past its shifts, counter i stays while the others that call one of its services
            could not work off that service's queue before its reception ends (the tickets
            issued are served: staff stay rather than send residents home)."""
            for s in counter_services[i]:
                left = queued[s] - taken[s] + arrivals.due(s, f)
                if left <= 0:
                    continue
                horizon = reception_end[s]
                capacity = 0.0
                for j, weight in servers[s]:
                    if j == i or overtime[j]:
                        continue
                    for a, b in windows[j][first_window[j] :]:
                        capacity += weight * max(0.0, min(b, horizon) - max(a, f))
                if left * models[s].occupation > capacity:
                    return True
            return False

        retired: list[tuple[float, int]] = []
        pending = len(want)
        revived = False
        heappush, heappop = heapq.heappush, heapq.heappop
        # Every call of the targets' services on the path, in order (its moment), and for each
        # target its place among them and the moments of the places after it: each target's call
        # is averaged over the places around its own (see `_smoothed`).
        spread = self.spread
        calls: list[list[float]] = [[] for _ in sids]
        cv2 = [m.occupation_cv2 for m in models]
        tracked = [False] * len(sids)
        if spread > 0.0:
            for tid in want:
                tracked[names[tickets[tid].service]] = True
        placed: dict[str, tuple[int, int, list[float]]] = {}

        def places_after(i: int, s: int, f: float, occ: float, n: int) -> list[float]:
            """The moments of the next n calls of service s after the one counter i makes at f, had
            the tickets behind it been called in turn: only the counters that would call s then
            (it comes first for them, or their earlier services have nobody left), each call as
            long as this one. Played apart from the path (its other services' calls would cost
            as much again as the path itself), as many as there are tickets behind."""
            n = min(n, queued[s] - taken[s] + arrivals.due(s, f))
            out: list[float] = []
            if n <= 0:
                return out
            free = [(f + occ + turn[i], i)]
            for x, j in heap:
                svc = counter_services[j]
                if s in svc and all(taken[e] >= queued[e] for e in svc[: svc.index(s)]):
                    free.append((x, j))
            heapq.heapify(free)
            while free and len(out) < n:
                x, j = heappop(free)
                wins = windows[j]
                w = first_window[j]
                while w < len(wins) and x >= wins[w][1]:
                    w += 1
                if w == len(wins):
                    continue  # its last shift is over
                if x < wins[w][0]:
                    heappush(free, (wins[w][0] + start_lag, j))
                    continue
                out.append(x)
                heappush(free, (x + occ + turn[j], j))
            return out

        while pending:
            if not heap:
                if revived:
                    break
                # Nobody left to call what still waits: the counters that stopped last for its
                # service stay on (a ward office serves the tickets it issued).
                revived = True
                left = {names[tickets[tid].service] for tid in want if tid not in out}
                for f, i in retired:
                    if left.intersection(counter_services[i]):
                        windows[i], first_window[i], overtime[i] = [(f, INF)], 0, True
                        window_start[i], window_end[i] = f, INF
                        heappush(heap, (f, i))
                retired = []
                continue
            f, i = heappop(heap)
            if f >= window_end[i] or overtime[i]:
                # Past the window it was in (or in overtime): the next window, overtime, or done.
                wins = windows[i]
                w = first_window[i]
                while w < len(wins) and f >= wins[w][1]:
                    w += 1
                if w == len(wins) or overtime[i]:
                    if not short(i, f):
                        retired.append((f, i))
                        continue
                    if not overtime[i]:
                        wins = windows[i] = [(f, INF)]
                        w, overtime[i] = 0, True
                first_window[i] = w
                window_start[i], window_end[i] = wins[w]
            if f < window_start[i]:
                heappush(heap, (window_start[i] + start_lag, i))
                continue
            hour = int(f // 3600)
            if hour > 23:
                hour = 23
            for s in counter_services[i]:
                if jump_next[s] <= f:  # a ticket re-entering ahead of the queue: present, answered
                    occ = costs[s][0][hour]
                    if tracked[s]:
                        calls[s].append(f)
                    jumps.advance(s)
                    break
                k = taken[s]
                if k < queued[s]:
                    taken[s] = k + 1
                    tid = queue_of[s][k][1]
                    t = tickets[tid]
                    by_hour, p_first, p_requeued, no_show, ns_hour = costs[s]
                    b = int((f - t.issued) * _PER_BUCKET)
                    if b >= WAIT_BUCKETS:
                        b = WAIT_BUCKETS - 1
                    if t.requeued:
                        p = p_requeued[b]
                    else:
                        p = p_first[b] * ns_hour[hour]
                        if p > 1.0:
                            p = 1.0
                    occ = p * no_show + (1.0 - p) * by_hour[hour]
                    if tid in want:
                        out[tid] = f
                        pending -= 1
                        if tracked[s]:
                            k = len(calls[s])
                            reach = int(REACH * _sigma(spread, k, cv2[s]) + 0.5)
                            placed[tid] = (s, k, places_after(i, s, f, occ, reach))
                    if tracked[s]:
                        calls[s].append(f)
                    break
                if arrival_next[s] <= f and not overtime[i]:
                    by_hour, p_first, _, no_show, ns_hour = costs[s]
                    b = int((f - arrival_next[s]) * _PER_BUCKET)
                    p = p_first[b if b < WAIT_BUCKETS else WAIT_BUCKETS - 1] * ns_hour[hour]
                    if p > 1.0:
                        p = 1.0
                    occ = p * no_show + (1.0 - p) * by_hour[hour]
                    if tracked[s]:
                        calls[s].append(f)
                    arrivals.advance(s)
                    break
            else:
                # Nothing to call: idle until something it calls is expected.
                if overtime[i]:
                    retired.append((f, i))
                    continue
                soon = INF
                for s in counter_services[i]:
                    if arrival_next[s] < soon:
                        soon = arrival_next[s]
                    if jump_next[s] < soon:
                        soon = jump_next[s]
                if soon == INF:
                    retired.append((f, i))
                else:
                    heappush(heap, ((soon if soon > f else f) + wake, i))
                continue
            heappush(heap, (f + occ + turn[i], i))
        for tid in want:
            if tid not in out:
                out[tid] = INF
        for tid, (s, k, after) in placed.items():
            out[tid] = _smoothed(calls[s], after, k, _sigma(spread, k, cv2[s]), closes)
        return out


def _sigma(spread: float, k: int, cv2: float) -> float:
    """The uncertainty (in places) of the place of a call with k calls of its service before it,
    whose durations have the squared coefficient of variation cv2 (spread 0: none)."""
    if spread <= 0.0:
        return 0.0
    return math.sqrt(SPREAD_MIN * SPREAD_MIN + k * cv2 + (spread * k) ** 2)


def _smoothed(calls: list[float], after: list[float], k: int, sigma: float, closes: float) -> float:
    """The k-th call's moment averaged over the places around it, weighted by a normal curve of
    `sigma` places (to ±REACH sigma): `calls` the path's calls to the k-th, `after` the places
    after it. Why: the path is one course of the day, and where the counters' capacity drops (a
    lunch rotation, the end of a shift) a few calls more or less before it move a call by half an
    hour; the real day's work is a few per cent faster or slower than the path's, so the expected
    call is the average over the places the ticket may in effect hold. A place after it with
    nobody there to call, or after closing (where overtime, not the work, decides), takes the
    path mirrored around the k-th call instead."""
    if sigma < 0.5:
        return calls[k]
    reach = int(REACH * sigma + 0.5)
    total = weights = 0.0
    inv = -0.5 / (sigma * sigma)
    own = calls[k]
    for j in range(max(0, k - reach), k + reach + 1):
        w = math.exp((j - k) * (j - k) * inv)
        if j <= k:
            at = calls[j]
        elif j - k <= len(after) and after[j - k - 1] <= closes:
            at = after[j - k - 1]
        else:
            mirror = 2 * k - j
            at = 2.0 * own - calls[mirror] if mirror >= 0 else own
        total += w * at
        weights += w
    return total / weights


_PER_BUCKET = 1.0 / WAIT_BUCKET_S

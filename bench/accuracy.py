"""The accuracy benchmark of the wait-time predictors (issue 14): every predictor against the
oracle's error floor, on simulated days.

    uv run python -m bench.run --only accuracy --plots docs/waittime   # the full run (~7 min)
    uv run python -m bench.accuracy --quick                            # a few tickets, while developing

Owns the scenarios (office, ordinary or rush days, which test days), their data (the simulator,
profiles v1, the board run by `CapacityEstimator`, fixed seeds: history = the earlier simulated
days, test = the days after them), the scores and the goals. Each test day is replayed with every
predictor (a prediction for every ticket at its issue, from the events before it); a sample of
tickets — evenly spread over each day's issues — also gets the oracle's mean wait
(counterfloor/oracle.py). A predictor's MSE is divided by the oracle's on the same tickets, after
taking off the oracle's own Monte-Carlo error (its standard errors squared, averaged): the error
floor. Bias, MAE, the share more than 10 minutes too low and the p10–p90 coverage are over every
called ticket of the test days. It also times a 3,000-ticket rush day (bench/rushday.py) replayed
with every prediction, against `naive` in the same run. Writes `accuracy.md` (the tables) and a
plot per scenario (`accuracy-<scenario>.png`) into the folder given.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from bench.common import ROOT_DIR, Result, nerima, rush_steps
from bench.rushday import Step, rush_day
from counterfloor.oracle import OracleWait, oracle_waits
from counterfloor.simulate import PROFILES_VERSION, open_days, record_day
from office import events as ev
from office.config import OfficeConfig, load_config
from office.model import Office
from office.waittime import PREDICTORS, Predictor, replay, train
from office.waittime import records as r
from office.waittime.records import from_events
from office.waittime.replay import actual_waits

TOO_LOW_S = 600.0
MINUTE = 60.0
MARGIN = 0.75  # "a clear margin": best's MSE at most this share of the baseline's


@dataclass(frozen=True)
class Run:
    """One simulated stretch of days of one office: `history` open days, then `test` open days.
    Each test day is predicted by predictors trained on the `history` open days before it (as a
    gateway learns from its journal every night), earlier test days included."""

    key: str
    config: str  # path under the repository
    rush: bool
    seed: int
    start: date
    history: int
    test: int


@dataclass(frozen=True)
class Scenario:
    key: str  # file names
    name: str
    run: Run
    saturdays: bool  # test on the run's Saturdays (else its weekdays)
    samples: int  # oracle tickets per test day
    goal: float  # best's MSE ÷ the floor, at most


# Ordinary days from May to early July 2027 (no public holiday after Golden Week until 19 July);
# rush days from late February (every day simulated as a March–April moving-season day), tested
# in the second half of March, before the new staff of 1 April.
RUNS = {
    # 7 June–17 July: 30 weekdays, 6 Saturdays.
    "nerima": Run("nerima", "examples/nerima.toml", False, 1401, date(2027, 5, 10), 24, 36),
    # 16–31 March: 11 weekdays (22 March is a holiday), 2 Saturdays (not tested).
    "nerima-rush": Run("nerima-rush", "examples/nerima.toml", True, 1402, date(2027, 2, 22), 18, 13),
    "oizumi": Run("oizumi", "examples/oizumi.toml", False, 1403, date(2027, 5, 10), 20, 20),
    "oizumi-rush": Run("oizumi-rush", "examples/oizumi.toml", True, 1404, date(2027, 2, 22), 15, 12),
}
SCENARIOS = (
    Scenario("nerima-weekdays", "Nerima, ordinary weekdays", RUNS["nerima"], False, 12, 1.4),
    Scenario("nerima-rush", "Nerima, rush weekdays", RUNS["nerima-rush"], False, 20, 1.2),
    Scenario("nerima-saturdays", "Nerima, Saturdays", RUNS["nerima"], True, 40, 1.4),
    Scenario("oizumi-weekdays", "Oizumi, ordinary weekdays", RUNS["oizumi"], False, 20, 1.4),
    Scenario("oizumi-rush", "Oizumi, rush weekdays", RUNS["oizumi-rush"], False, 30, 1.2),
)
DRAWS = 40  # oracle draws per ticket: its Monte-Carlo error is then about 1/40 of the floor
QUICK = {"test_days": 2, "samples": 4, "draws": 12}  # per scenario
NAMES = tuple(PREDICTORS)


# -- data ----------------------------------------------------------------------------------------
@dataclass
class Day:
    day: date
    events: list[ev.Event]
    records: list[r.Event]


def simulate(run: Run, test_days: int) -> tuple[OfficeConfig, list[Day]]:
    """The run's history days and its first `test_days` test days."""
    config = load_config(ROOT_DIR / run.config)
    out = []
    for d in open_days(config, run.start, run.history + test_days):
        recorded = record_day(config, d, seed=run.seed, rush=run.rush)
        out.append(Day(d, list(recorded.events), from_events(recorded.events, config.id)))
    return config, out


# -- scores --------------------------------------------------------------------------------------
@dataclass
class Acc:
    """Sums over (predicted, p10, p90, actual) rows."""

    n: int = 0
    sq: float = 0.0
    err: float = 0.0
    abs: float = 0.0
    low: int = 0
    cover: int = 0

    def add(self, mean: float, p10: float, p90: float, actual: float) -> None:
        e = mean - actual
        self.n += 1
        self.sq += e * e
        self.err += e
        self.abs += abs(e)
        self.low += actual - mean > TOO_LOW_S
        self.cover += p10 <= actual <= p90

    @property
    def mse(self) -> float:
        return self.sq / self.n if self.n else math.nan


@dataclass
class Sampled:
    """One oracle ticket: the day, service and hour of issue, the true wait, the oracle's
    answer, every predictor's mean."""

    day: date
    ticket: str
    service: str
    hour: int
    actual: float
    oracle: OracleWait
    predicted: dict[str, float]


@dataclass
class Outcome:
    scenario: Scenario
    days: list[date] = field(default_factory=list)
    all: dict[str, Acc] = field(default_factory=dict)  # every called ticket, by predictor
    sampled: list[Sampled] = field(default_factory=list)
    issued: int = 0
    oracle_seconds: float = 0.0


def floor_of(rows: Sequence[Sampled]) -> tuple[float, float, float]:
    """(oracle MSE, its Monte-Carlo part, the floor = the difference) over these tickets."""
    mse = statistics.fmean((s.oracle.mean - s.actual) ** 2 for s in rows)
    mc = statistics.fmean(s.oracle.se**2 for s in rows)
    return mse, mc, mse - mc


def ratio(rows: Sequence[Sampled], name: str) -> float:
    if len(rows) < 2:
        return math.nan
    floor = floor_of(rows)[2]
    mse = statistics.fmean((s.predicted[name] - s.actual) ** 2 for s in rows)
    return mse / floor if floor > 0 else math.inf


def jackknife(rows: Sequence[Sampled], name: str) -> float:
    """The standard error of `ratio` by leaving out one test day at a time (a day's waits miss
    together, so tickets are not independent)."""
    days = sorted({s.day for s in rows})
    if len(days) < 3:
        return math.nan
    parts = [ratio([s for s in rows if s.day != d], name) for d in days]
    mean = statistics.fmean(parts)
    return math.sqrt((len(days) - 1) / len(days) * sum((p - mean) ** 2 for p in parts))


# -- running -------------------------------------------------------------------------------------
def evaluate(
    out: Outcome,
    config: OfficeConfig,
    predictors: dict[str, Predictor],
    day: Day,
    samples: int,
    draws: int,
    log: list[str],
) -> None:
    """One test day: every predictor's replay, and the oracle for a sample of its tickets."""
    scenario = out.scenario
    out.days.append(day.day)
    waits = actual_waits(day.records)
    iso = day.day.isoformat()
    predicted: dict[str, dict[str, float]] = {}
    issued: list[tuple[str, str, float]] = []
    for name, predictor in predictors.items():
        rows = list(replay(day.records, predictor))
        predicted[name] = {x.ticket: x.prediction.mean for x in rows}
        issued = [(x.ticket, x.service, r.moment(x.issued_ts)[1]) for x in rows]
        for x in rows:
            actual = waits.get((iso, x.ticket))
            if actual is not None:
                out.all[name].add(x.prediction.mean, x.prediction.p10, x.prediction.p90, actual)
    out.issued += len(issued)
    every = max(1, len(issued) // samples)
    chosen = [row for row in issued[every // 2 :: every] if (iso, row[0]) in waits]
    started = time.perf_counter()
    answers = oracle_waits(
        config,
        day.day,
        day.events,
        {tid for tid, _, _ in chosen},
        seed=scenario.run.seed,
        rush=scenario.run.rush,
        draws=draws,
    )
    out.oracle_seconds += time.perf_counter() - started
    for tid, service, at in chosen:
        answer = answers[tid]
        if answer.draws < 2:
            log.append(f"{scenario.name}: {iso} {tid}: the oracle's days ended before its call; left out")
            continue
        mean = {name: predicted[name][tid] for name in predictors}
        out.sampled.append(Sampled(day.day, tid, service, int(at // 3600), waits[(iso, tid)], answer, mean))


def run_scenarios(quick: bool, log: list[str]) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for run in RUNS.values():
        scenarios = {s.saturdays: s for s in SCENARIOS if s.run is run}
        started = time.perf_counter()
        config, days = simulate(run, 8 if quick else run.test)
        log.append(
            f"{run.key}: seed {run.seed}{', rush' if run.rush else ''}, {len(days)} open days from {days[0].day} "
            f"simulated in {time.perf_counter() - started:.1f} s; each test day ({days[run.history].day}–"
            f"{days[-1].day}) predicted after learning from the {run.history} open days before it"
        )
        found = {k: Outcome(s, all={name: Acc() for name in NAMES}) for k, s in scenarios.items()}
        trained = 0.0
        for i in range(run.history, len(days)):
            day = days[i]
            out = found.get(day.day.weekday() == 5)
            if out is None or (quick and len(out.days) >= QUICK["test_days"]):
                continue
            started = time.perf_counter()
            predictors = {name: train(name, [d.records for d in days[i - run.history : i]]) for name in NAMES}
            trained += time.perf_counter() - started
            samples = QUICK["samples"] if quick else out.scenario.samples
            evaluate(out, config, predictors, day, samples, QUICK["draws"] if quick else DRAWS, log)
        log.append(f"{run.key}: learning and calibrating the predictors took {trained:.0f} s")
        for out in found.values():
            log.append(
                f"{out.scenario.name}: {len(out.days)} test days, {out.issued:,} tickets, {len(out.sampled)} with "
                f"the oracle ({QUICK['draws'] if quick else DRAWS} draws each, {out.oracle_seconds:.0f} s)"
            )
            print(f"accuracy: {out.scenario.name} done", flush=True)
        outcomes += found.values()
    order = [s.key for s in SCENARIOS]
    return sorted(outcomes, key=lambda o: order.index(o.scenario.key))


def speed(log: list[str], quick: bool) -> list[Result]:
    """The 3,000-ticket rush day of bench/rushday.py replayed with every prediction."""
    config = nerima()[0]
    trace = from_events(_events(config, rush_steps()), config.id)
    history = [
        from_events(_events(config, rush_day(config, day=date(2027, 3, d), seed=seed)), config.id)
        for seed, d in ((1, 23), (2, 24), (3, 25))[: 1 if quick else 3]
    ]
    started = time.perf_counter()
    best = train("best", history)
    trained = time.perf_counter() - started
    naive = train("naive", history)
    best_s, naive_s = [], []
    for _ in range(1 if quick else 3):
        started = time.perf_counter()
        rows = list(replay(trace, best))
        best_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        list(replay(trace, naive))
        naive_s.append(time.perf_counter() - started)
    b, n = statistics.median(best_s), statistics.median(naive_s)
    log.append(
        f"speed: the bench/rushday.py day (Nerima, {len(rows):,} tickets, {len(trace):,} events), "
        f"{len(history)} such days of history: best replays it with every prediction in {b:.2f} s "
        f"(median of {len(best_s)}; {1000 * b / len(rows):.2f} ms a ticket), learning and calibrating "
        f"{trained:.2f} s; naive {n:.2f} s"
    )
    return [
        Result(
            f"Wait-time replay, {len(rows):,}-ticket rush day, every prediction (best)",
            f"{b:.2f} s",
            f"{n:.2f} s (naive)",
            f"{b / n:.1f}",
            "≤ 5 s",
            b <= 5.0,
        )
    ]


def _events(config: OfficeConfig, steps: Iterable[Step]) -> list[ev.Event]:
    office = Office(config)
    out: list[ev.Event] = []
    for step in steps:
        out += office.execute(step.command, step.at).events
    return out


# -- reporting -----------------------------------------------------------------------------------
def _m(seconds: float) -> str:
    return f"{seconds / MINUTE:.1f}"


def _x(value: float) -> str:
    return "—" if math.isnan(value) else ("∞" if math.isinf(value) else f"{value:.2f}")


def _pct(value: float) -> str:
    return f"{100 * value:.0f} %"


def tables(outcomes: list[Outcome]) -> list[str]:
    lines = [
        f"Simulated days: profiles {PROFILES_VERSION}, the board run by CapacityEstimator. MSE ratios: a",
        "predictor's MSE over the oracle's tickets ÷ the error floor (the oracle's MSE on them less",
        "its Monte-Carlo part), ± its standard error by leaving out one test day at a time. Oracle MC:",
        "that Monte-Carlo part as a share of the floor. Oracle check: the floor ÷ the variance of the",
        "oracle's own draws (1 if its picture of what is unknown is right). Bias, MAE, > 10 min low and",
        "coverage: every called ticket of the test days.",
        "",
        "| scenario | test days | tickets (oracle) | floor RMSE | oracle MC | oracle bias | oracle check "
        "| oracle p10–p90 | " + " | ".join(f"{n} ×" for n in NAMES) + " |",
        "|---|---|---|---|---|---|---|---|" + "---|" * len(NAMES),
    ]
    for o in outcomes:
        _, mc, floor = floor_of(o.sampled)
        cover = statistics.fmean(s.oracle.p10 <= s.actual <= s.oracle.p90 for s in o.sampled)
        bias = statistics.fmean(s.oracle.mean - s.actual for s in o.sampled)
        spread = statistics.fmean(s.oracle.se**2 * s.oracle.draws for s in o.sampled)
        ratios = []
        for name in NAMES:
            cell = _x(ratio(o.sampled, name))
            if name == "best":
                cell += f" ± {_x(jackknife(o.sampled, name))}"
            ratios.append(cell)
        lines.append(
            f"| {o.scenario.name} | {len(o.days)} | {sum(a.n for a in o.all.values()) // len(o.all):,} "
            f"({len(o.sampled)}) | {_m(math.sqrt(max(floor, 0.0)))} min | {_pct(mc / floor)} | {_m(bias)} min | "
            f"{floor / spread:.2f} | {_pct(cover)} | " + " | ".join(ratios) + " |"
        )
    lines += [
        "",
        "| scenario | predictor | RMSE (min) | bias (min) | MAE (min) | > 10 min low | p10–p90 coverage |",
        "|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        for name in NAMES:
            a = o.all[name]
            lines.append(
                f"| {o.scenario.name} | {name} | {_m(math.sqrt(a.mse))} | {_m(a.err / a.n)} | {_m(a.abs / a.n)} | "
                f"{_pct(a.low / a.n)} | {_pct(a.cover / a.n)} |"
            )
    # By service and by hour, on the oracle's tickets: first best's ratio and the floor in a
    # table, then best's, naive's and capacity's ratios in a list.
    keys: tuple[tuple[str, Callable[[Sampled], str]], ...] = (
        ("service", lambda s: s.service),
        ("hour of issue", lambda s: f"{s.hour}h"),
    )
    for what, key in keys:
        by = [_groups(o.sampled, key) for o in outcomes]
        columns = sorted({k for g in by for k in g}, key=lambda k: (len(k), k) if what != "service" else (0, k))
        lines += [
            "",
            f"By {what}: best's MSE ÷ the floor (the floor's RMSE in minutes; fewer than {MIN_GROUP} tickets: —)",
            "",
            "| scenario | " + " | ".join(columns) + " |",
            "|---|" + "---|" * len(columns),
        ]
        for o, groups in zip(outcomes, by, strict=True):
            cells = []
            for k in columns:
                g = groups.get(k, [])
                floor = floor_of(g)[2] if len(g) >= MIN_GROUP else math.nan
                cells.append("—" if math.isnan(floor) else f"{_x(ratio(g, 'best'))} ({_m(math.sqrt(max(floor, 0)))})")
            lines.append(f"| {o.scenario.name} | " + " | ".join(cells) + " |")
        lines += ["", f"By {what}, each: tickets, best × / naive × / capacity ×:", ""]
        for o, groups in zip(outcomes, by, strict=True):
            cells = [
                f"{k} {len(g)}, {_x(ratio(g, 'best'))} / {_x(ratio(g, 'naive'))} / {_x(ratio(g, 'capacity'))}"
                for k in columns
                if len(g := groups.get(k, [])) >= MIN_GROUP
            ]
            lines.append(f"- {o.scenario.name}: " + "; ".join(cells))
    return lines


MIN_GROUP = 8  # tickets a service's or an hour's ratio is given for


def _groups(rows: Sequence[Sampled], key: Callable[[Sampled], str]) -> dict[str, list[Sampled]]:
    groups: dict[str, list[Sampled]] = {}
    for s in rows:
        groups.setdefault(key(s), []).append(s)
    return groups


def goals(outcomes: list[Outcome]) -> list[Result]:
    results = []
    for o in outcomes:
        best = ratio(o.sampled, "best")
        floor = floor_of(o.sampled)
        results.append(
            Result(
                f"Wait-time MSE ÷ oracle floor, {o.scenario.name} (best)",
                f"{_x(best)} ± {_x(jackknife(o.sampled, 'best'))}",
                f"floor RMSE {_m(math.sqrt(max(floor[2], 0.0)))} min (oracle MC {_pct(floor[1] / floor[2])})",
                _x(best),
                f"≤ {o.scenario.goal}",
                best <= o.scenario.goal,
            )
        )
        a = o.all["best"]
        results.append(
            Result(
                f"Wait-time p10–p90 coverage, {o.scenario.name} (best)",
                _pct(a.cover / a.n),
                f"{a.n:,} tickets",
                "—",
                "75–85 %",
                0.75 <= a.cover / a.n <= 0.85,
            )
        )
        for other in ("naive", "capacity"):
            mse_b = o.all["best"].mse
            mse_o = o.all[other].mse
            results.append(
                Result(
                    f"Wait-time MSE, best vs {other}, {o.scenario.name}",
                    f"{_m(math.sqrt(mse_b))} min RMSE",
                    f"{_m(math.sqrt(mse_o))} min RMSE ({other})",
                    f"{mse_b / mse_o:.2f}",
                    f"MSE ≤ {MARGIN}×",
                    mse_b <= MARGIN * mse_o,
                )
            )
    return results


def write_tickets(outcomes: list[Outcome], path: Path) -> None:
    """Every oracle ticket: its true wait, the oracle's answer and every predictor's mean (s)."""
    lines = [
        "scenario,day,ticket,service,hour,actual_s,oracle_s,oracle_se_s,oracle_p10_s,oracle_p90_s,"
        + ",".join(f"{n}_s" for n in NAMES)
    ]
    for o in outcomes:
        for x in o.sampled:
            a = x.oracle
            lines.append(
                f"{o.scenario.key},{x.day},{x.ticket},{x.service},{x.hour},{x.actual:.0f},{a.mean:.1f},{a.se:.1f},"
                f"{a.p10:.0f},{a.p90:.0f}," + ",".join(f"{x.predicted[n]:.1f}" for n in NAMES)
            )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# -- plots (Pillow: no plotting library here) ----------------------------------------------------
COLOURS = {
    "oracle": (110, 110, 110),
    "best": (31, 100, 200),
    "naive": (230, 120, 20),
    "capacity": (40, 150, 60),
}


def plot(outcome: Outcome, path: Path) -> None:
    """Predicted vs true wait (the oracle's tickets) and RMSE by hour of issue."""
    width, height = 1000, 470
    img = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=13)
    title = ImageFont.load_default(size=16)
    d.text(
        (20, 10), f"{outcome.scenario.name}: {len(outcome.sampled)} tickets with the oracle", fill="black", font=title
    )
    rows = outcome.sampled
    series = {
        "oracle": [(s.actual, s.oracle.mean) for s in rows],
        **{n: [(s.actual, s.predicted[n]) for s in rows] for n in ("naive", "capacity", "best")},
    }
    top = sorted(s.actual for s in rows)[int(0.98 * (len(rows) - 1))] / MINUTE if rows else 1.0
    step = _step(max(5.0, top))
    top = max(step, math.ceil(top / step) * step)
    x0, y0, w, h = 70, 60, 360, 360
    _axes(d, font, (x0, y0, w, h), (0, top, step), (0, top, step), ("true wait (min)", "predicted (min)"))
    d.line([(x0, y0 + h), (x0 + w, y0)], fill=(200, 200, 200))
    for name in ("capacity", "naive", "oracle", "best"):
        for actual, pred in series[name]:
            if pred / MINUTE > top or actual / MINUTE > top:
                continue
            px = x0 + actual / MINUTE / top * w
            py = y0 + h - pred / MINUTE / top * h
            d.ellipse([px - 2, py - 2, px + 2, py + 2], fill=COLOURS[name])
    # RMSE by hour of issue, floor for the oracle
    hours = sorted({s.hour for s in rows})
    by_hour: dict[str, list[tuple[int, float]]] = {n: [] for n in series}
    for hr in hours:
        g = [s for s in rows if s.hour == hr]
        if len(g) < 3:
            continue
        by_hour["oracle"].append((hr, math.sqrt(max(floor_of(g)[2], 0.0)) / MINUTE))
        for n in ("naive", "capacity", "best"):
            by_hour[n].append((hr, math.sqrt(statistics.fmean((s.predicted[n] - s.actual) ** 2 for s in g)) / MINUTE))
    # Scaled to best and the floor; a baseline beyond it is drawn at the top edge.
    ymax = 2.5 * max((v for n in ("best", "oracle") for _, v in by_hour[n]), default=1.0)
    ystep = _step(ymax)
    ymax = max(ystep, math.ceil(ymax / ystep) * ystep)
    lo, hi = (min(hours), max(hours) + 1) if hours else (8, 19)
    x1 = 560
    _axes(d, font, (x1, y0, w, h), (lo, hi, 1), (0, ymax, ystep), ("hour of issue", "RMSE (min)"))
    for name, pts in by_hour.items():
        xy = [(x1 + (hr + 0.5 - lo) / (hi - lo) * w, y0 + h - min(v, ymax) / ymax * h) for hr, v in pts]
        if len(xy) > 1:
            d.line(xy, fill=COLOURS[name], width=2)
        for px, py in xy:
            d.ellipse([px - 3, py - 3, px + 3, py + 3], fill=COLOURS[name])
    for i, name in enumerate(("best", "oracle", "naive", "capacity")):
        label = "oracle (floor)" if name == "oracle" else name
        d.rectangle([x1 + 10 + 110 * i, 35, x1 + 20 + 110 * i, 45], fill=COLOURS[name])
        d.text((x1 + 25 + 110 * i, 32), label, fill="black", font=font)
    img.convert("P", palette=Image.Palette.ADAPTIVE, colors=32).save(path, optimize=True)


def _axes(
    d: ImageDraw.ImageDraw,
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
    box: tuple[int, int, int, int],
    xs: tuple[float, float, float],
    ys: tuple[float, float, float],
    labels: tuple[str, str],
) -> None:
    """A frame with ticks: `xs`/`ys` are (first, last, step) of the axis."""
    x0, y0, w, h = box
    for axis, (first, last, step) in (("x", xs), ("y", ys)):
        v = first
        while v <= last + 1e-9:
            f = (v - first) / (last - first)
            if axis == "x":
                px = x0 + w * f
                d.line([(px, y0 + 1), (px, y0 + h - 1)], fill=(238, 238, 238))
                d.line([(px, y0 + h), (px, y0 + h + 4)], fill="black")
                d.text((px - 6, y0 + h + 6), f"{v:g}", fill="black", font=font)
            else:
                py = y0 + h - h * f
                d.line([(x0 + 1, py), (x0 + w - 1, py)], fill=(238, 238, 238))
                d.line([(x0 - 4, py), (x0, py)], fill="black")
                d.text((x0 - 34, py - 7), f"{v:g}", fill="black", font=font)
            v += step
    d.rectangle([x0, y0, x0 + w, y0 + h], outline="black")
    d.text((x0 + w / 2 - 40, y0 + h + 24), labels[0], fill="black", font=font)
    d.text((x0 - 60, y0 - 20), labels[1], fill="black", font=font)


def _step(top: float) -> float:
    """A round tick step giving at most six ticks up to `top`."""
    return next(s for s in (1, 2, 5, 10, 15, 20, 30, 60, 120, 240, 480) if top / s <= 6)


# -- entry points --------------------------------------------------------------------------------
def run(log: list[str], *, quick: bool = False, out: Path | None = None, csv: Path | None = None) -> list[Result]:
    started = time.perf_counter()
    outcomes = run_scenarios(quick, log)
    if csv is not None:
        write_tickets(outcomes, csv)
    results = goals(outcomes)
    results += speed(log, quick)
    report = tables(outcomes)
    log.append(f"accuracy: {time.perf_counter() - started:.0f} s in all")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        for o in outcomes:
            plot(o, out / f"accuracy-{o.scenario.key}.png")
        (out / "accuracy.md").write_text("\n".join(report) + "\n", encoding="utf-8")
        log.append(f"accuracy: tables and plots written to {out}")
    else:
        print("\n".join(report), flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.accuracy", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few tickets and draws, while developing")
    parser.add_argument("--plots", type=Path, default=None, help="write accuracy.md and the plots here")
    parser.add_argument("--csv", type=Path, default=None, help="write every oracle ticket's figures here")
    args = parser.parse_args(argv)
    log: list[str] = []
    results = run(log, quick=args.quick, out=args.plots, csv=args.csv)
    for x in results:
        met = "—" if x.met is None else ("yes" if x.met else "**no**")
        print(f"| {x.name} | {x.measured} | {x.baseline} | {x.ratio} | {x.goal} | {met} |")
    print("\n".join(f"- {line}" for line in log))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Scoring predictions (office.waittime.score) and the predictions table (office.waittime.table):
the true wait is issue → first call, a ticket never called is left out, a requeued no-show's
second wait is not scored; MSE, bias, MAE, too low by more than 10 minutes, p10–p90 coverage."""

from __future__ import annotations

import pytest

from office.waittime.predictors import Prediction
from office.waittime.replay import Issued
from office.waittime.score import score, true_waits
from office.waittime.table import HEADER, TableError, parse, rows
from tests.test_waittime_baselines import ALL_DAY, Log


def _day() -> Log:
    log = (
        Log()
        .schedule("08:20", {"1": (["a", "b"], ALL_DAY)})
        .at("08:30", "counter_opened", counter="1", services=["a", "b"])
    )
    log.issue("09:00", "A-001", "a").issue("09:05", "A-002", "a").issue("09:30", "A-003", "a")
    log.at("09:10", "called", ticket="A-001", counter="1")
    log.at("09:20", "called", ticket="A-002", counter="1")  # waited 15 minutes
    log.at("09:21", "no_show", ticket="A-002", counter="1", requeued=True)
    log.at("09:40", "called", ticket="A-002", counter="1")  # its second wait: not scored
    log.at("09:45", "served", ticket="A-002", counter="1")
    log.issue("10:00", "B-001", "b")
    log.at("10:01", "transferred", ticket="B-001", to_service="a", from_service="b", counter=None)
    return log.at("10:05", "called", ticket="B-001", counter="1")  # A-003 is never called


def _row(ticket: str, service: str, clock: str, mean: float, p10: float, p90: float) -> Issued:
    return Issued(ticket, service, f"2027-03-15T{clock}:00.000+09:00", Prediction(mean, p10, p90))


def test_the_true_wait_is_issue_to_first_call() -> None:
    waits = true_waits(_day().events())
    assert waits == {("2027-03-15", "A-001"): 600.0, ("2027-03-15", "A-002"): 900.0, ("2027-03-15", "B-001"): 300.0}


def test_scores_by_definition() -> None:
    waits = true_waits(_day().events())
    report = score(
        [
            _row("A-001", "a", "09:00", 600, 500, 700),  # exact, inside
            _row("A-002", "a", "09:05", 200, 100, 400),  # 700 s too low: more than 10 minutes
            _row("A-003", "a", "09:30", 50, 0, 100),  # never called: not scored
            _row("B-001", "b", "10:00", 400, 350, 450),  # 100 s too high, outside its range
        ],
        waits,
    )
    a = report.all
    assert a.n == 3
    assert a.mse == pytest.approx((0 + 700**2 + 100**2) / 3)
    assert a.bias == pytest.approx((0 - 700 + 100) / 3)
    assert a.mae == pytest.approx(800 / 3)
    assert a.too_low == pytest.approx(1 / 3)
    assert a.coverage == pytest.approx(1 / 3)
    assert a.mean_wait == pytest.approx(600.0)
    assert {k: v.n for k, v in report.by_service.items()} == {"a": 2, "b": 1}  # by service at issue
    assert {k: v.n for k, v in report.by_hour.items()} == {9: 2, 10: 1}
    assert report.by_service["b"].bias == pytest.approx(100.0)


def test_exactly_ten_minutes_low_is_not_more_than_ten_minutes_low() -> None:
    waits = {("2027-03-15", "A-001"): 600.0}
    assert score([_row("A-001", "a", "09:00", 0, 0, 0)], waits).all.too_low == 0.0


def test_the_table_is_written_and_read_back() -> None:
    issued = [
        _row("A-001", "a", "09:00", 600.04, 500, 700.25),
        _row("C,1", 'quo"te', "09:05", 0, 0, 0),
    ]
    lines = list(rows(issued))
    assert lines[0] == ",".join(HEADER) + "\n" == "ticket,service,issued_ts,predicted_wait_s,p10_s,p90_s\n"
    assert lines[1] == "A-001,a,2027-03-15T09:00:00.000+09:00,600.0,500.0,700.2\n"
    back = parse(lines)
    assert [(b.ticket, b.service, b.issued_ts) for b in back] == [(i.ticket, i.service, i.issued_ts) for i in issued]
    assert back[0].prediction == Prediction(600.0, 500.0, 700.2)
    with pytest.raises(TableError, match="line 1"):
        parse(["ticket,service\n"])
    with pytest.raises(TableError, match="line 2"):
        parse([lines[0], "A-001,a,ts,soon,1,2\n"])

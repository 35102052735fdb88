"""The alerts-latency benchmark in small (bench/alerts_latency.py): a real broker, `counterfloor
central` with Web Push (a VAPID key) and e-mail (`[alerts.mail]`) in a process of its own, a push
service and an SMTP server in this process, 20 tickets subscribed through the page's API and a few
calls published as a gateway publishes them — every ticket called while subscribed gets exactly
one "called" push (its payload decrypted with the ticket's keys) and one "called" mail, nothing
goes twice and nothing goes to a ticket that is not subscribed. Correctness only: the timings are
the benchmark's (docs/benchmarks.md). Without Mosquitto the embedded broker is used, except under
CI (`CI=true`), where a missing Mosquitto fails the test (tests/mqtt_support.py)."""

from __future__ import annotations

from pathlib import Path

from bench.alerts_latency import Plan, measure, results


def test_every_called_subscriber_gets_one_push_and_one_mail(tmp_path: Path) -> None:
    plan = Plan(subscribed=20, rates=(0.0, 5.0), calls=(4, 4), plain_calls=(2, 2), baseline_calls=2)
    log: list[str] = []
    out = measure(plan, tmp_path, log)
    assert out.problems == []
    assert out.issued == plan.tickets and out.subscriptions == 28
    called = plan.baseline_calls + sum(plan.calls)
    assert len(out.called_subscribed) == called and len(out.called_plain) == 4
    assert out.pushes["called"] == out.mails["called"] == called
    # "near" (ahead 1): each baseline ticket at its subscription, the first two of each of the four
    # services' queues at theirs, then one per subscribed call (the ticket now one ahead).
    assert out.pushes["near"] == out.mails["near"] == plan.baseline_calls + 8 + sum(plan.calls)
    assert out.decrypted == out.pushes.total()  # every push is its ticket's payload, of its kind
    assert out.central_warnings == 0
    plain, _, base, *loaded = out.phases
    assert [len(ph.page) for ph in out.phases] == [2, 2, 2, 4, 4]
    assert not plain.push and not plain.mail  # no subscription, nothing measured
    assert len(base.push) == len(base.mail) == 2
    assert all(len(ph.push) == len(ph.mail) == 4 for ph in loaded)
    rows = results(out, log)
    delivered = next(r for r in rows if r.name.startswith("Alerts delivered"))
    assert delivered.met is True and "0 problems" in delivered.measured

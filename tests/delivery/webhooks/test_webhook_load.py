"""Issue #16's proof, small: signed webhook events posted by 20 concurrent clients against a
real web process (runserver on the test database, PostgreSQL), a fifth of them redeliveries, in
random order: no 500, every distinct event stored once, every job in the state "best status
wins" gives. The full size (10,000 events, gunicorn) is ``./dev bench webhook_events``."""

from __future__ import annotations

import pytest

from bench import webhook_events as load
from delivery.delivery_state import RANK
from delivery.models import DeliveryEvent
from tests.processes import WebServer

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
EVENTS = 500


def test_500_events_from_20_clients_are_stored_once_and_end_in_the_best_state(tmp_path):
    jobs = load.sent_jobs(EVENTS // load.EVENTS_PER_JOB)
    plan = load.make_plan(jobs, EVENTS)
    assert plan.events_posted == EVENTS and len(plan.distinct) == EVENTS * 4 // 5
    assert _some_job_gets_a_lower_state_after_a_higher_one(plan)  # the order is a real test

    web = WebServer(tmp_path, **load.web_environment()).start()
    try:
        outcome = load.post_all(web.url, plan, clients=load.CLIENTS)
    finally:
        web.stop()

    assert load.check(plan, outcome) == []
    assert outcome.statuses == {200: len(plan.posts)}
    assert DeliveryEvent.objects.count() == len(plan.distinct)
    assert outcome.seconds < 20, f"{EVENTS} events took {outcome.seconds:.1f}s"


def test_the_check_sees_a_missing_event_and_a_wrong_state(tmp_path):
    jobs = load.sent_jobs(5)
    plan = load.make_plan(jobs, 20)
    nothing_posted = load.Outcome(1.0)
    problems = load.check(plan, nothing_posted)
    assert any("16 events missing" in problem for problem in problems)
    wrong = any(state for state in plan.expected_state.values())
    assert wrong == any("not in their best state" in problem for problem in problems)


def _some_job_gets_a_lower_state_after_a_higher_one(plan: load.Plan) -> bool:
    best: dict[int, str] = {}
    for _, events in plan.posts:
        for event in events:
            current = best.get(event.job_id, "")
            if RANK[event.outcome] < RANK[current]:
                return True
            best[event.job_id] = max(current, event.outcome, key=RANK.__getitem__)
    return False

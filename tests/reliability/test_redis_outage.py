"""Redis killed and restarted under load (docs/invariants.md).

A web process, two workers and beat run on a redis-server of the test's own (never the machine's
shared one). Guests accept over HTTP before, during and after the outage.
"""

from collections import Counter

import pytest
import requests

from delivery.models import EmailJob
from events.models import Event
from gpmas.embedded_redis import EmbeddedRedis
from invitations.models import Invitation
from tests.events.factories import make_event, tokens
from tests.processes import CeleryBeat, CeleryWorker, WebServer, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
CAPACITY, GUESTS = 25, 50


def accept(web: WebServer, token: str) -> int:
    with requests.Session() as guest:
        page = guest.get(f"{web.url}/i/{token}/", timeout=20)
        if page.status_code != 200:
            return page.status_code
        answer = guest.post(
            f"{web.url}/i/{token}/accept/",
            data={"party_size": "1", "csrfmiddlewaretoken": guest.cookies["csrftoken"]},
            headers={"Referer": f"{web.url}/i/{token}/"},
            allow_redirects=False,
            timeout=20,
        )
        return answer.status_code


def accept_before_during_and_after_the_outage(
    web: WebServer, own: EmbeddedRedis, links: list[str]
) -> dict[str, int]:
    """Each guest's answer (HTTP status): the first 15 accept with Redis up, the next 15 with it
    killed, the rest after its restart; a guest told "busy" tries once more."""
    answers: dict[str, int] = {}
    for token in links[:15]:
        answers[token] = accept(web, token)
    own.kill()  # kill -9: the broker, locks, rate limits and provider state are gone
    for token in links[15:30]:
        answers[token] = accept(web, token)
    own.start()  # same port and directory: the AOF is replayed
    for token in links[30:]:
        answers[token] = accept(web, token)
    busy = [token for token, status in answers.items() if status == 409]
    for token in busy:  # "busy, try again": the guest tries again
        answers[token] = accept(web, token)
    return answers


def test_redis_killed_and_restarted_loses_and_doubles_nothing(
    tmp_path, organizer, providers, clean_sandbox
):
    event = make_event(organizer, guests=GUESTS, capacity=CAPACITY)
    links = list(tokens(event).values())
    own = EmbeddedRedis(tmp_path / "redis", appendonly=True).start()
    env = {
        "REDIS_URL": own.url,
        "GPMAS_GUEST_RATE_LIMIT": "10000/m",
        "GPMAS_DRAIN_INTERVAL_SECONDS": "1",
    }
    web = WebServer(tmp_path, **env).start()
    processes = [CeleryWorker(n, tmp_path, **env).start() for n in ("a", "b")]
    processes.append(CeleryBeat(tmp_path, **env).start())
    try:
        answers = accept_before_during_and_after_the_outage(web, own, links)

        assert Counter(answers.values()) == {302: GUESTS}, Counter(answers.values())
        due_now = EmailJob.objects.exclude(kind="reminder")  # reminders wait for their day
        total = due_now.count()
        wait_for(
            lambda: due_now.filter(status="sent").count() == total,
            timeout=120,
            interval=0.5,
            message=f"all {total} emails sent after Redis returned",
        )
    finally:
        for process in processes:
            process.stop()
        web.stop()
        own.stop()

    rsvps = Counter(Invitation.objects.values_list("rsvp", flat=True))
    assert rsvps == {"accepted": CAPACITY, "waitlisted": GUESTS - CAPACITY}
    assert Event.objects.get(pk=event.pk).seats_taken == CAPACITY
    answer_kinds = Counter(
        EmailJob.objects.exclude(kind="invitation").values_list("kind", flat=True)
    )
    assert answer_kinds["confirmation"] == CAPACITY
    assert answer_kinds["waitlist"] == GUESTS - CAPACITY
    assert answer_kinds["reminder"] == CAPACITY
    assert set(EmailJob.objects.filter(kind="reminder").values_list("status", flat=True)) == {
        "queued"
    }
    delivered = Counter(m.headers["X-GPMAS-Job"] for m in clean_sandbox.inbox.messages())
    assert len(delivered) == total
    assert set(delivered.values()) == {1}

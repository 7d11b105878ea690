"""The one-click unsubscribe headers (RFC 8058) reach every provider's emulator as each recipient's
own: alone and in batch calls (SendGrid personalizations, Mailgun recipient-variables, where a
header goes as ``%recipient.h:List-Unsubscribe%``, SES SendBulkEmail entries, where it is one of
the entry's ReplacementHeaders), and through SMTP. Real invitations,
through the real SDKs; asserted on what the emulators received."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

import pytest

from delivery.models import EmailJob
from delivery.sending import jobs_send
from invitations.models import Invitation
from tests.delivery.sendpath import calls, copies_of, ids, only
from tests.events.factories import make_event

pytestmark = pytest.mark.django_db
POST_VALUE = "List-Unsubscribe=One-Click"
BATCHING = {"sendgrid": 1, "mailgun": 1, "ses": 1, "smtp": 3}  # calls for three guests


def invitation_jobs(organizer, guests: int) -> list[EmailJob]:
    event = make_event(organizer, guests=guests)
    return [inv.email_job for inv in Invitation.objects.filter(event=event).order_by("email")]


def assert_each_got_its_own(sandbox, jobs: list[EmailJob]) -> None:
    values = set()
    for job in jobs:
        [copy] = copies_of(sandbox, job)
        assert copy.to == [job.to_email]
        # Through SES and SMTP the MIME header is folded after the colon (the link does not fit
        # a 78-character line, as compat32 writes it); unfolded, the value is the same.
        assert copy.header("List-Unsubscribe").strip() == job.headers["List-Unsubscribe"]
        assert copy.header("List-Unsubscribe-Post") == POST_VALUE
        values.add(copy.header("List-Unsubscribe").strip())
    assert len(values) == len(jobs)  # every recipient its own link


@pytest.mark.parametrize("kind", ["sendgrid", "mailgun", "ses", "smtp"])
def test_each_recipient_of_a_send_gets_its_own_unsubscribe_headers(
    providers, clean_sandbox, organizer, kind
):
    only(kind)
    jobs = invitation_jobs(organizer, guests=3)

    results = jobs_send(job_ids=ids(jobs))

    assert results == dict.fromkeys(ids(jobs), EmailJob.Status.SENT)
    assert calls(clean_sandbox, kind) == BATCHING[kind]
    assert_each_got_its_own(clean_sandbox, jobs)
    raw = copies_of(clean_sandbox, jobs[0])[0].raw
    if kind == "mailgun":  # one form, each recipient's link as its own recipient variable
        form = parse_qs(raw)
        assert form["h:List-Unsubscribe"] == ["%recipient.h:List-Unsubscribe%"]
        variables = json.loads(form["recipient-variables"][0])
        for job in jobs:
            own = variables[job.to_email]["h:List-Unsubscribe"]
            assert own == job.headers["List-Unsubscribe"]
    if kind == "sendgrid":  # one body, the headers in each personalization
        body = json.loads(raw)
        assert "headers" not in body
        assert [p["headers"]["List-Unsubscribe"] for p in body["personalizations"]] == [
            job.headers["List-Unsubscribe"] for job in jobs
        ]


@pytest.mark.parametrize("kind", ["sendgrid", "mailgun"])
def test_a_message_sent_alone_carries_the_headers_too(providers, clean_sandbox, organizer, kind):
    only(kind)
    [job] = invitation_jobs(organizer, guests=1)

    assert jobs_send(job_ids=[job.pk]) == {job.pk: EmailJob.Status.SENT}

    assert calls(clean_sandbox, kind) == 1
    assert_each_got_its_own(clean_sandbox, [job])

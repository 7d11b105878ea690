"""Inviting (preview, confirm, thousands at once), resending, revoking, exporting."""

import csv
import io
import time
from collections import Counter

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from delivery import bulk_copy
from delivery.models import EmailJob
from events.errors import EventClosed
from invitations.guestlist import Guest
from invitations.models import Invitation
from invitations.services import (
    invitation_accept,
    invitation_resend,
    invitation_revoke,
    invitations_invite,
)
from tests.events.factories import invite, jobs, make_event, token_of, tokens

pytestmark = pytest.mark.django_db
Status = EmailJob.Status


@pytest.fixture
def event(organizer):
    return make_event(organizer, guests=["old@example.com"], capacity=2)


def invite_url(event) -> str:
    return reverse("event_invite", args=[event.pk])


def state() -> tuple:
    return (
        list(Invitation.objects.order_by("id").values_list("email", "rsvp", "revoked_at")),
        list(EmailJob.objects.order_by("id").values_list("kind", "status")),
    )


def test_the_preview_counts_new_duplicate_known_and_bad_lines_and_changes_nothing(
    organizer_client, event
):
    before = state()
    pasted = (
        "Ann <ann@example.com>\n"
        "OLD@example.com\n"  # invited already
        "not an address\n"
        "ann@example.com, Ann again\n"  # duplicate of line 1
        "bob@example.com\n"
    )
    response = organizer_client.post(invite_url(event), {"action": "preview", "guests": pasted})
    assert response.status_code == 200
    preview = response.context["preview"]
    assert [g.email for g in preview["new"]] == ["ann@example.com", "bob@example.com"]
    assert [g.email for g in preview["already"]] == ["old@example.com"]
    assert [(d.line, d.first_line) for d in preview["list"].duplicates] == [(4, 1)]
    assert [e.line for e in preview["list"].errors] == [3]
    body = response.content.decode()
    assert '<strong id="preview-new">2</strong> to invite' in body
    assert "Send 2 invitations" in body
    assert state() == before


def test_confirming_invites_the_new_guests_and_reports_the_rest(organizer_client, event):
    preview = organizer_client.post(
        invite_url(event),
        {"action": "preview", "guests": "Ann <ann@example.com>\nold@example.com\nbob@example.com"},
    )
    canonical = preview.context["preview"]["canonical"]
    invite(event, "bob@example.com")  # someone else invited bob in between
    response = organizer_client.post(
        invite_url(event), {"action": "confirm", "guests": canonical}, follow=True
    )
    assert response.redirect_chain[-1][0] == f"/events/{event.pk}/"
    body = response.content.decode()
    assert (
        "1 invitation is on its way" in body
        and "1 guest had been invited already and was skipped" in body
    )
    ann = Invitation.objects.get(email="ann@example.com")
    assert ann.name == "Ann" and ann.email_job.kind == "invitation"
    assert Invitation.objects.filter(event=event).count() == 3


def test_a_csv_upload_is_previewed_with_line_numbers(organizer_client, event):
    upload = SimpleUploadedFile(
        "guests.csv", b"email,name\nann@example.com,Ann\nbroken,Bob\n", content_type="text/csv"
    )
    response = organizer_client.post(
        invite_url(event), {"action": "preview", "guests_file": upload}
    )
    preview = response.context["preview"]
    assert [g.email for g in preview["new"]] == ["ann@example.com"]
    assert [(e.line, e.text) for e in preview["list"].errors] == [(3, "broken,Bob")]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"guests": ""}, "Paste at least one guest"),
        ({"guests_file": ("big.csv", b"a@example.com\n" * 300)}, "at most 2,048 bytes"),
        ({"guests_file": ("latin.csv", "zoë@example.com".encode("latin-1"))}, "not UTF-8"),
        ({"guests": "x@example.com\n" * 6}, "more than 5 guests"),
    ],
    ids=["empty", "oversized", "not utf-8", "too many lines"],
)
def test_a_list_that_cannot_be_taken_is_refused_with_a_clear_error(
    organizer_client, event, settings, data, message
):
    settings.GPMAS_GUEST_LIST_MAX_BYTES = 2048
    settings.GPMAS_GUEST_LIST_MAX_LINES = 5
    if "guests_file" in data:
        name, content = data["guests_file"]
        data = {"guests_file": SimpleUploadedFile(name, content, content_type="text/csv")}
    before = state()
    response = organizer_client.post(invite_url(event), {"action": "preview", **data})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert state() == before


def test_a_tampered_confirmation_is_refused_and_invites_nobody(organizer_client, event):
    before = state()
    for guests in ("", "email,name\nnot-an-address,X\n", "garbage"):
        response = organizer_client.post(invite_url(event), {"action": "confirm", "guests": guests})
        assert response.status_code == 400
    assert state() == before


def test_ten_thousand_guests_in_one_request_take_a_few_queries_per_thousand(
    organizer_client, event
):
    count = 10_000
    canonical = "email,name\n" + "".join(f"g{i}@example.com,Guest {i}\n" for i in range(count))
    started = time.monotonic()
    with CaptureQueriesContext(connection) as queries:
        response = organizer_client.post(
            invite_url(event), {"action": "confirm", "guests": canonical}
        )
    elapsed = time.monotonic() - started
    assert response.status_code == 302
    assert Invitation.objects.filter(event=event).count() == count + 1
    assert EmailJob.objects.filter(kind="invitation", topic=event.topic).count() == count + 1
    assert not Invitation.objects.filter(email_job__isnull=True).exists()
    # Per batch of 1000: the batch's own transaction (here a savepoint and its release: the test
    # runs in one), the event's row locked and the batch's live invitations read under it, the
    # invitations and the jobs each by COPY on PostgreSQL (two statements each: the scratch
    # table's CREATE ... IF NOT EXISTS and the INSERT that moves its rows; the COPY itself is
    # not a query Django sees), one read of the suppression list and one of the unsubscribes,
    # and the enqueue's savepoint and release. SQLite splits each INSERT where it caps the
    # parameters of one statement (999).
    per_thousand = 12 if connection.vendor == "postgresql" else 64
    assert len(queries) <= 20 + per_thousand * count // 1000, len(queries)
    print(f"\n10,000 invitations in one request: {elapsed:.1f}s, {len(queries)} queries")


def test_a_big_invite_writes_by_copy_the_rows_a_small_one_writes(organizer, monkeypatch):
    # 150 invitations go by COPY (delivery/bulk_copy.py) on PostgreSQL; with COPY out of reach
    # the same invite goes through bulk_create. The rows must not tell the two apart.
    if connection.vendor != "postgresql":
        pytest.skip("COPY is PostgreSQL's")
    guests = [Guest(email=f"g{i}@example.com", name=f"Gü \\ {i}\t'") for i in range(150)]

    def invited(copy_from: int) -> list[dict]:
        monkeypatch.setattr(bulk_copy, "COPY_FROM", copy_from)
        event = make_event(organizer)
        report = invitations_invite(event=event, guests=guests)
        stored = Invitation.objects.in_bulk([inv.pk for inv in report.invited])
        assert [stored[inv.pk].token_hash for inv in report.invited] == [
            inv.token_hash for inv in report.invited
        ]  # every object got its own row's id
        skip = {"id", "event_id", "token_hash", "email_job_id", "created_at", "calendar_uid"}
        rows = Invitation.objects.filter(event=event).order_by("email").values()
        return [{k: v for k, v in row.items() if k not in skip} for row in rows]

    assert invited(copy_from=100) == invited(copy_from=10**6)


def test_inviting_into_a_cancelled_event_is_refused(event):
    from events.services import event_cancel

    event_cancel(event=event)
    with pytest.raises(EventClosed):
        invitations_invite(event=event, guests=[Guest("new@example.com")])
    assert not Invitation.objects.filter(email="new@example.com").exists()


def test_resend_gives_a_new_link_and_the_old_one_stops_working(client, event):
    invitation = Invitation.objects.get(email="old@example.com")
    old_token, old_job = token_of(invitation), invitation.email_job_id
    invitation_resend(invitation=invitation)
    invitation.refresh_from_db()
    new_token = token_of(invitation)
    assert new_token != old_token and invitation.email_job_id != old_job
    assert EmailJob.objects.get(pk=old_job).status == Status.CANCELLED
    response = client.get(reverse("guest_invitation", args=[old_token]))
    assert response.status_code == 410 and "replaced" in response.content.decode()
    assert (
        client.post(reverse("guest_accept", args=[old_token]), {"party_size": 1}).status_code == 410
    )
    assert client.get(reverse("guest_invitation", args=[new_token])).status_code == 200


def test_revoke_kills_the_link_cancels_queued_mail_and_frees_seats(client, organizer):
    event = make_event(organizer, guests=3, capacity=1)
    links = tokens(event)
    invitation_accept(token=links["guest0@example.com"], party_size=1)
    invitation_accept(token=links["guest1@example.com"], party_size=1)  # waitlisted
    revoked = Invitation.objects.get(email="guest0@example.com")
    invitation_revoke(invitation=revoked)
    revoked.refresh_from_db()
    assert revoked.revoked_at is not None
    assert revoked.email_job.status == Status.CANCELLED
    assert jobs("confirmation")[0].status == Status.CANCELLED
    assert jobs("reminder", to_email="guest0@example.com")[0].status == Status.CANCELLED
    assert Invitation.objects.get(email="guest1@example.com").rsvp == "accepted"  # promoted
    response = client.get(reverse("guest_invitation", args=[links["guest0@example.com"]]))
    assert response.status_code == 410 and "withdrew" in response.content.decode()
    # Invited again, the guest gets a new invitation; the revoked one stays revoked.
    invite(event, "guest0@example.com")
    assert Invitation.objects.filter(email="guest0@example.com").count() == 2


def test_resend_and_revoke_through_the_guest_list(organizer_client, event):
    invitation = Invitation.objects.get(email="old@example.com")
    next_url = f"/events/{event.pk}/?rsvp=pending"
    urls = [
        reverse(n, args=[event.pk, invitation.pk])
        for n in ("invitation_resend", "invitation_revoke")
    ]
    for url in urls:
        before = list(Invitation.objects.values()), list(EmailJob.objects.values())
        assert organizer_client.get(url).status_code == 200  # a confirmation page, nothing done
        assert (list(Invitation.objects.values()), list(EmailJob.objects.values())) == before
        response = organizer_client.post(url, {"next": next_url})
        assert response.status_code == 302 and response["Location"] == next_url
    response = organizer_client.post(urls[0], {"next": "https://evil.example/"})
    assert response.status_code == 409  # revoked: cannot be resent
    assert Counter(jobs("invitation")[i].status for i in range(2)) == {Status.CANCELLED: 2}


def test_an_offsite_next_is_ignored(organizer_client, event):
    invitation = Invitation.objects.get(email="old@example.com")
    url = reverse("invitation_resend", args=[event.pk, invitation.pk])
    response = organizer_client.post(url, {"next": "https://evil.example/"})
    assert response["Location"] == f"/events/{event.pk}/"


def test_the_export_has_every_guest_and_defuses_spreadsheet_formulas(organizer_client, organizer):
    event = make_event(organizer, guests=["a@example.com"])
    invitations_invite(event=event, guests=[Guest("b@example.com", name="=HYPERLINK(1)")])
    response = organizer_client.get(reverse("event_guests_csv", args=[event.pk]))
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:3] == ["name", "email", "rsvp"]
    assert [row[1] for row in rows[1:]] == ["a@example.com", "b@example.com"]
    assert rows[2][0] == "'=HYPERLINK(1)"
    assert rows[1][5] == "queued"


def test_sending_invitations_is_rate_limited_per_organizer(organizer_client, event, settings):
    settings.GPMAS_INVITE_RATE_LIMIT = "2/h"
    for i in range(2):
        data = {"action": "confirm", "guests": f"email,name\nn{i}@example.com,N\n"}
        assert organizer_client.post(invite_url(event), data).status_code == 302
    before = state()
    data = {"action": "confirm", "guests": "email,name\nn9@example.com,N\n"}
    assert organizer_client.post(invite_url(event), data).status_code == 429
    assert state() == before

"""One-click unsubscribe (RFC 8058): invitations and reminders carry List-Unsubscribe and
List-Unsubscribe-Post with a signed link (confirmations do not); a POST to it, form-encoded or
multipart, without a session or CSRF token, unsubscribes the address from that organizer and
answers 200; a GET only asks; a tampered token is refused; later mail from that organizer to
that address ends ``suppressed`` without a provider call, another organizer's still goes."""

import re

import pytest
from django.core import signing
from django.test import Client
from django.test.client import MULTIPART_CONTENT
from django.urls import reverse

from delivery import unsubscribe
from delivery.models import EmailJob, Unsubscribe
from delivery.sending import jobs_send
from invitations.models import Invitation
from tests.events.factories import invite, make_event, tokens
from tests.invitations.helpers import accept

pytestmark = pytest.mark.django_db
Status = EmailJob.Status
ONE_CLICK = {"List-Unsubscribe": "One-Click"}
LINK = re.compile(r"^<(http://127\.0\.0\.1:8000(/u/([^/]+)/))>$")


def header_link(job: EmailJob) -> tuple[str, str, str]:
    """(absolute URL, path, token) of the job's List-Unsubscribe header."""
    return LINK.match(job.headers["List-Unsubscribe"]).groups()


def invitation_job(event, address="guest0@example.com") -> EmailJob:
    return Invitation.objects.get(event=event, email=address).email_job


@pytest.fixture
def mail_client() -> Client:
    """What a mail provider posts with: no cookies, CSRF checks on."""
    return Client(enforce_csrf_checks=True)


@pytest.fixture
def link(organizer) -> str:
    """The unsubscribe path in guest0's invitation."""
    return header_link(invitation_job(make_event(organizer, guests=1)))[1]


def test_invitations_and_reminders_carry_the_headers_and_a_link_confirmations_do_not(
    client, organizer
):
    event = make_event(organizer, guests=1)
    accept(client, tokens(event)["guest0@example.com"])
    invitation = Invitation.objects.get(event=event)
    mailings = [invitation.email_job, invitation.reminder_job]
    for job in mailings:
        url, _, token = header_link(job)
        assert job.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert unsubscribe.read_token(token) == (organizer.pk, "guest0@example.com")
        assert job.list_owner_id == organizer.pk
        assert url in job.text_body and f'href="{url}"' in job.html_body
    assert [job.kind for job in mailings] == ["invitation", "reminder"]
    confirmation = invitation.answer_job
    assert confirmation.kind == "confirmation" and confirmation.list_owner_id is None
    assert not {"List-Unsubscribe", "List-Unsubscribe-Post"} & set(confirmation.headers)
    assert "/u/" not in confirmation.text_body + confirmation.html_body


@pytest.mark.parametrize("encoding", ["form", "multipart"])
def test_a_one_click_post_unsubscribes_without_session_or_csrf_and_answers_200(
    mail_client, organizer, link, encoding
):
    if encoding == "form":
        response = mail_client.post(
            link, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
        )
    else:
        response = mail_client.post(link, ONE_CLICK, content_type=MULTIPART_CONTENT)
    assert response.status_code == 200 and not response.has_header("Location")
    assert "You are unsubscribed" in response.content.decode()
    assert not response.cookies
    row = Unsubscribe.objects.get()
    assert (row.organizer, row.address) == (organizer, "guest0@example.com")
    assert row.source == "one-click"


def test_a_body_the_parser_refuses_still_unsubscribes(mail_client, link):
    response = mail_client.post(link, b"--x\r\ngarbage", content_type="multipart/form-data")
    assert response.status_code == 200
    assert Unsubscribe.objects.get().source == "one-click"


def test_unsubscribing_again_is_harmless(mail_client, link):
    for _ in range(3):
        assert mail_client.post(link, ONE_CLICK).status_code == 200
    assert Unsubscribe.objects.count() == 1


def test_a_get_only_asks_and_its_button_posts_to_the_same_link(mail_client, link):
    for _ in range(3):  # mail scanners, preview panes
        response = mail_client.get(link)
        assert response.status_code == 200
    body = response.content.decode()
    assert "Unsubscribe from Olivia Park?" in body and "guest0@example.com" in body
    assert re.search(r'<form method="post">\s*<div class="actions"><button', body)
    assert not Unsubscribe.objects.exists()
    assert mail_client.post(link).status_code == 200  # the button: no One-Click field
    assert Unsubscribe.objects.get().source == "page"
    assert "You are unsubscribed" in mail_client.get(link).content.decode()


@pytest.mark.parametrize(
    "tamper",
    [
        lambda token: token[:-1] + ("A" if token[-1] != "A" else "B"),  # signature
        lambda token: "x" + token,  # payload
        lambda token: (
            unsubscribe.token_for(1, "other@example.com").split(":")[0] + ":" + token.split(":")[1]
        ),  # someone else's payload, this signature
        lambda token: "not-a-token",
        lambda token: "",
    ],
)
def test_a_tampered_or_malformed_token_is_refused_and_changes_nothing(
    mail_client, organizer, tamper
):
    event = make_event(organizer, guests=1)
    _, _, token = header_link(invitation_job(event))
    path = f"/u/{tamper(token)}/" if tamper(token) else "/u/%20/"
    for response in (mail_client.get(path), mail_client.post(path, ONE_CLICK)):
        assert response.status_code == 400
        assert "This unsubscribe link is not valid" in response.content.decode()
    assert not Unsubscribe.objects.exists()
    assert invitation_job(event).status == Status.QUEUED


def test_a_token_signed_for_something_else_is_refused(mail_client):
    other = signing.Signer(salt="another.purpose").sign_object([1, "a@example.com"])
    assert mail_client.post(reverse("guest_unsubscribe", args=[other])).status_code == 400


def sandbox_calls(sandbox) -> int:
    return sum(kind["calls"] for kind in sandbox.inbox.stats().values())


def test_after_unsubscribing_that_organizers_mail_is_suppressed_and_anothers_still_goes(
    mail_client, client, organizer, outsider, providers, clean_sandbox
):
    first = make_event(organizer, guests=1)
    link = header_link(invitation_job(first))[1]
    accept(client, tokens(first)["guest0@example.com"])
    accepted = Invitation.objects.get(event=first)
    assert accepted.reminder_job.status == Status.QUEUED

    assert mail_client.post(link, ONE_CLICK).status_code == 200

    reminder = EmailJob.objects.get(pk=accepted.reminder_job_id)
    assert reminder.status == Status.SUPPRESSED  # was waiting: not sent either
    assert "unsubscribed" in reminder.last_error
    [again] = invite(make_event(organizer), "Guest0@Example.com")
    theirs = invite(make_event(outsider), "guest0@example.com")[0].email_job
    mine = EmailJob.objects.get(pk=again.email_job_id)
    assert (mine.status, mine.attempts) == (Status.SUPPRESSED, 0)
    assert "unsubscribed" in mine.last_error
    assert jobs_send(job_ids=[mine.pk]) == {mine.pk: "not-claimed"}
    assert sandbox_calls(clean_sandbox) == 0
    assert jobs_send(job_ids=[theirs.pk]) == {theirs.pk: Status.SENT}
    assert sandbox_calls(clean_sandbox) == 1
    [copy] = clean_sandbox.inbox.messages(job=str(theirs.pk))
    assert copy.to == ["guest0@example.com"]


def test_the_guests_own_confirmation_still_goes_after_unsubscribing(mail_client, client, link):
    assert mail_client.post(link, ONE_CLICK).status_code == 200
    token = tokens(Invitation.objects.get().event)["guest0@example.com"]
    accept(client, token)
    invitation = Invitation.objects.get()
    assert invitation.answer_job.status == Status.QUEUED
    assert invitation.reminder_job.status == Status.SUPPRESSED


def test_the_admin_lists_unsubscribes(mail_client, admin_client, link):
    mail_client.post(link, ONE_CLICK)
    page = admin_client.get("/admin/delivery/unsubscribe/").content.decode()
    assert "guest0@example.com" in page and "olivia" in page and "one-click" in page


def test_an_organizer_without_a_display_name_is_not_sent_to_the_profile_page(
    django_user_model, link
):
    """Someone logged in who never named themselves still unsubscribes: no redirect."""
    nameless = django_user_model.objects.create_user("nameless", "n@example.com", "pw-n-12345")
    browser = Client()
    browser.force_login(nameless)
    assert browser.get("/").status_code == 302  # the rule applies elsewhere
    response = browser.post(link, ONE_CLICK)
    assert response.status_code == 200 and Unsubscribe.objects.count() == 1

"""The invitation email: from "Olivia Park via GPMAS", the host by display name, and the
fallback link a real link in the HTML part."""

import email
import email.header
import email.policy
import re

import pytest

from delivery.message import OutgoingMessage
from events.models import OrganizerProfile
from invitations.models import Invitation
from tests.events.factories import make_event, token_of

pytestmark = pytest.mark.django_db


def invitation_job(event):
    return Invitation.objects.get(event=event).email_job


def test_the_invitation_comes_from_the_organizer_via_gpmas(organizer):
    job = invitation_job(make_event(organizer, guests=1))
    assert job.from_email == "Olivia Park via GPMAS <invitations@gpmas.local>"
    assert job.headers["Reply-To"] == "olivia@example.com"


def test_the_host_is_the_display_name_never_the_username(organizer):
    job = invitation_job(make_event(organizer, guests=1))
    for body in (job.text_body, job.html_body):
        assert "Olivia Park invites you" in body
        assert re.search(r"Host:?\s*(</th><td>)?Olivia Park", body)
        assert "olivia" not in body.replace("Olivia", "")


def test_the_fallback_link_is_a_real_link_in_the_html_part(organizer):
    event = make_event(organizer, guests=1)
    job = invitation_job(event)
    link = f"http://127.0.0.1:8000/i/{token_of(Invitation.objects.get(event=event))}/"
    hrefs = re.findall(r'<a href="([^"]+)"[^>]*>([^<]+)</a>', job.html_body)
    assert (link, link) in hrefs  # the visible link text is the link itself, clickable
    assert link in job.text_body


def test_a_non_ascii_name_is_encoded_in_the_header_and_reads_back(organizer):
    OrganizerProfile.objects.filter(user=organizer).update(display_name="Zoë Ørsted, PhD")
    job = invitation_job(make_event(organizer, guests=1))
    assert job.from_email == '"Zoë Ørsted, PhD via GPMAS" <invitations@gpmas.local>'
    message = OutgoingMessage(
        to_email=job.to_email,
        from_email=job.from_email,
        subject=job.subject,
        text_body=job.text_body,
        html_body=job.html_body,
    )
    raw = message.to_bytes()
    assert raw.isascii()
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["From"].addresses[0].display_name == "Zoë Ørsted, PhD via GPMAS"
    assert parsed["From"].addresses[0].addr_spec == "invitations@gpmas.local"

"""The database's own guards on answers (a party of at least one, no more seats than capacity,
one live invitation per address), and the token kept only in the guest's link."""

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from events.models import Event
from invitations.models import Invitation
from tests.events.factories import token_of

pytestmark = pytest.mark.django_db


def test_the_database_refuses_a_party_below_one_and_seats_above_capacity(event, token):
    invitation = Invitation.objects.get(email="guest0@example.com")
    with pytest.raises(IntegrityError), transaction.atomic():
        Invitation.objects.filter(pk=invitation.pk).update(party_size=0)
    with pytest.raises(IntegrityError), transaction.atomic():
        Event.objects.filter(pk=event.pk).update(seats_taken=4)  # capacity 3


def test_the_database_allows_one_live_invitation_per_address(event):
    invitation = Invitation.objects.get(email="guest0@example.com")
    duplicate = Invitation(event=event, email=invitation.email, token_hash="0" * 64)
    with pytest.raises(IntegrityError), transaction.atomic():
        duplicate.save()
    Invitation.objects.filter(pk=invitation.pk).update(revoked_at=timezone.now())
    duplicate.save()  # the revoked one no longer counts


def test_the_link_is_the_only_copy_of_the_token(event):
    invitation = Invitation.objects.get(email="guest0@example.com")
    token = token_of(invitation)
    assert token not in invitation.token_hash and len(invitation.token_hash) == 64
    assert len(token) >= 43  # 256 bits, url-safe base64

"""The guest links: reversed once per route, each token put in, and always what reverse() gives."""

import pytest
from django.conf import settings
from django.urls import NoReverseMatch, get_script_prefix, reverse, set_script_prefix

from delivery import unsubscribe
from invitations.tokens import invitation_url, token_new, unsubscribe_url

ADDRESSES = ["ana@example.com", "O'Brien+events@Example.COM", "üser@bücher.example", "x@y.z"]


def reversed_link(route: str, token: str) -> str:
    return settings.GPMAS_SITE_URL.rstrip("/") + reverse(route, args=[token])


@pytest.fixture
def script_prefix():
    before = get_script_prefix()
    yield set_script_prefix
    set_script_prefix(before)


def test_invitation_links_are_reverses():
    for _ in range(200):
        token, _ = token_new()
        assert invitation_url(token) == reversed_link("guest_invitation", token)


def test_unsubscribe_links_are_reverses():
    for organizer_id in (1, 42, 10**9):
        for address in ADDRESSES:
            token = unsubscribe.token_for(organizer_id, address)
            expected = reversed_link("guest_unsubscribe", token)
            assert unsubscribe_url(organizer_id, address) == expected
            assert unsubscribe.read_token(expected.rstrip("/").rsplit("/", 1)[1]) == (
                organizer_id,
                unsubscribe.normalized(address),
            )


def test_each_script_prefix_has_its_own_path(script_prefix, settings):
    settings.GPMAS_SITE_URL = "https://gpmas.example"
    token, _ = token_new()
    assert invitation_url(token) == f"https://gpmas.example/i/{token}/"
    script_prefix("/events-app/")
    assert invitation_url(token) == f"https://gpmas.example/events-app/i/{token}/"
    assert invitation_url(token) == reversed_link("guest_invitation", token)


def test_a_token_reverse_would_quote_or_refuse_goes_through_reverse():
    assert invitation_url("a b%c") == reversed_link("guest_invitation", "a b%c")
    assert invitation_url("a b%c").endswith("/i/a%20b%25c/")
    with pytest.raises(NoReverseMatch):
        invitation_url("a/b")

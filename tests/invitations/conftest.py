"""Fixtures shared by the guest tests: an event of four guests with three seats and two
plus-ones each, and the first guest's token."""

import pytest

from tests.events.factories import make_event, tokens


@pytest.fixture
def event(organizer):
    return make_event(organizer, guests=4, capacity=3, plus_ones_allowed=2)


@pytest.fixture
def token(event):
    return tokens(event)["guest0@example.com"]

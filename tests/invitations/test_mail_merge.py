"""A bulk invite renders the invitation templates once per batch and puts each guest's values in
(invitations/mail_merge.py). What every guest receives must be exactly what rendering their own
email would give: awkward names, an empty name, event text that looks like markup or like a mark."""

import re
from pathlib import Path

import pytest

from invitations import emails
from invitations.mail_merge import FIELDS
from invitations.models import Invitation
from tests.events.factories import make_event

pytestmark = pytest.mark.django_db

NAMES = [
    "Ann",
    "",
    '<b>O\'Neil & "Co"</b>',
    "Zoë Ünal 🎉",
    "{{ link }} %s \\1 \\g<0>",
    "gpmas0123456789abcdeflink",
]
TEMPLATES = Path(emails.__file__).parent / "templates"


def test_every_merged_invitation_is_the_one_its_own_rendering_gives(organizer):
    event = make_event(
        organizer, guests=0, title="Tea & <cake>", description='Bring "snacks" & {{ link }}'
    )
    shared = emails.batch_context(event)
    for number, name in enumerate(NAMES):
        invitation = Invitation(event=event, email=f"g{number}@example.com", name=name)
        link = f"http://127.0.0.1:8000/i/tok{number}&x=<y>/"
        alone = emails.invitation_draft(event, invitation, link=link)
        merged = emails.invitation_draft(event, invitation, link=link, shared=shared)
        assert merged == alone, name
        assert link in alone.text_body and "&amp;x=&lt;y&gt;" in alone.html_body
    assert len(shared["merges"].merges) == 1  # one merge served them all


def test_a_merge_for_one_batch_is_not_reused_by_the_next(organizer):
    event = make_event(organizer, guests=0)
    first, second = emails.batch_context(event), emails.batch_context(event)
    assert first["merges"] is not second["merges"]


def _variables_read(template: str, seen: set[str] | None = None) -> set[str]:
    """The first name of every variable a template (with what it extends and includes) reads."""
    seen = set() if seen is None else seen
    source = (TEMPLATES / template).read_text()
    names = set(re.findall(r"{{\s*(\w+)", source))
    for tag in re.findall(r"{%\s*(?:if|elif|for)\s+([^%]*)%}", source):
        names |= set(re.findall(r"(?<![.\w\"'])([a-z_]\w*)", tag)) - {"not", "and", "or", "in"}
    for other in re.findall(r"{%\s*(?:extends|include)\s+\"([^\"]+)\"", source):
        if other not in seen:
            seen.add(other)
            names |= _variables_read(other, seen)
    return names


@pytest.mark.parametrize("kind", sorted(emails.MERGED_KINDS))
def test_a_merged_kind_reads_no_per_guest_value_but_the_merged_ones(kind):
    # A merged template reading, say, invitation.party_size would show the first guest's value
    # to every guest of the batch.
    shared = {"subject", "site_url", "event", "organizer_name", "when", "answers_close"}
    for suffix in ("txt", "html"):
        read = _variables_read(f"invitations/email/{kind}.{suffix}")
        assert read <= shared | set(FIELDS), read - shared - set(FIELDS)


def test_the_check_sees_a_per_guest_value(tmp_path, monkeypatch):
    monkeypatch.setattr(f"{__name__}.TEMPLATES", tmp_path)
    (tmp_path / "t.txt").write_text("{% if invitation.party_size > 1 %}{{ position }}{% endif %}")
    assert _variables_read("t.txt") == {"invitation", "position"}

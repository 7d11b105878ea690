"""Thousands of invitations to one event: the templates rendered once, each guest's values put in.

An invitation differs from guest to guest only in the guest's name, the link and the unsubscribe
link; rendering both templates ten thousand times made up a third of a bulk invite's request.
A merge renders them once with a random mark in each of those places (twice in all: the greeting
differs when a guest has no name) and then replaces each mark with the guest's value, escaped
for HTML as the template would have escaped it. tests/invitations/test_mail_merge.py holds the
merged result to the template's own for awkward names, and fails if a merged template starts to
read any other per-guest value.
"""

from __future__ import annotations

import html
import re
import secrets
from collections.abc import Callable

# The per-guest values a merged template may read; all else must be the same for every guest.
FIELDS = ("guest_name", "link", "unsubscribe_url")


class MailMerge:
    def __init__(self, render_each: Callable[[dict], dict[str, str]], context: dict) -> None:
        # Letters and digits only, so the mark passes every filter and escape unchanged; random,
        # so no event text or guest name can contain it.
        nonce = secrets.token_hex(8)
        self.marks = {f"gpmas{nonce}{field.replace('_', '')}": field for field in FIELDS}
        self.pattern = re.compile("|".join(self.marks))
        marked = {**context, **{field: mark for mark, field in self.marks.items()}}
        self.named = render_each(marked)
        self.unnamed = render_each({**marked, "guest_name": ""})

    def render(self, context: dict) -> dict[str, str]:
        rendered = self.named if context.get("guest_name") else self.unnamed
        values = {mark: str(context.get(field) or "") for mark, field in self.marks.items()}
        # Django's escape is html.escape (quotes too); called directly, without its lazy wrapper.
        escaped = {mark: html.escape(value) for mark, value in values.items()}
        return {
            **rendered,
            "text_body": self.pattern.sub(lambda m: values[m[0]], rendered["text_body"]),
            "html_body": self.pattern.sub(lambda m: escaped[m[0]], rendered["html_body"]),
        }


class MailMerges:
    """The merges of one batch, one per (kind, subject); kept in the batch's shared context."""

    def __init__(self) -> None:
        self.merges: dict[tuple[str, str], MailMerge] = {}

    def render(
        self, kind: str, subject: str, context: dict, render_each: Callable[[dict], dict]
    ) -> dict[str, str]:
        merge = self.merges.get((kind, subject))
        if merge is None:
            merge = self.merges[kind, subject] = MailMerge(render_each, context)
        return merge.render(context)

"""What is wrong with an email address a person typed, in words they can act on, quoting what
they typed as they typed it (never lower-cased)."""

from __future__ import annotations

import re

_SPACE = re.compile(r"\s")


def email_problem(text: str) -> str:
    """Why ``text`` (the email part of a guest-list line) is not a valid address."""
    quoted = f"“{text}”"
    if "<" in text and ">" not in text:
        return f"missing closing > in {quoted}"
    if ">" in text and "<" not in text:
        return f"missing opening < in {quoted}"
    if "@" not in text:
        return f"no @ in {quoted}: not an email address"
    if text.count("@") > 1:
        return f"more than one @ in {quoted}"
    local, domain = text.split("@")
    if not local.strip():
        return f"nothing before the @ in {quoted}"
    if not domain.strip():
        return f"no domain after the @ in {quoted}"
    if _SPACE.search(text):
        return (
            f"a space in {quoted}: write “Name <email>” or “email, name” to add a name"
            if _SPACE.search(local.strip())
            else f"a space in {quoted}"
        )
    if "." not in domain:
        return f"the domain “{domain}” has no dot (like example.com)"
    if ".." in domain or domain[0] in ".-" or domain[-1] in ".-":
        return f"the domain “{domain}” is not valid"
    return f"{quoted} is not a valid email address"

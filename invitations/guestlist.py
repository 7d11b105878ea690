"""Guest lists as organizers paste or upload them, checked line by line.

Pasted lines take one of ``Name <email>``, ``email`` or ``email, name`` (a tab works like the
comma, and ``name, email`` is understood too). A CSV file has those in its columns, or a header
row naming an ``email`` and a ``name`` column. Every problem is reported with its line number;
a list that is too large, or a file that is not UTF-8, is refused whole.
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from invitations.address_problems import email_problem

MAX_NAME = 200
MAX_EMAIL = 254
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")
_ANGLE = re.compile(r"^(?P<name>.*?)\s*<(?P<email>[^<>]*)>$")


@dataclass(frozen=True)
class Guest:
    email: str
    name: str = ""
    line: int = 0


@dataclass(frozen=True)
class LineError:
    line: int
    text: str
    message: str


@dataclass(frozen=True)
class Duplicate:
    line: int
    email: str
    first_line: int


@dataclass
class GuestList:
    guests: list[Guest] = field(default_factory=list)
    errors: list[LineError] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)
    refused: str = ""  # the whole list was refused (too large, unreadable); nothing else is set

    @property
    def lines(self) -> int:
        return len(self.guests) + len(self.errors) + len(self.duplicates)

    def canonical_csv(self) -> str:
        """The valid guests as CSV with a header: what the confirmation step posts back."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["email", "name"])
        for guest in self.guests:
            writer.writerow([guest.email, guest.name])
        return out.getvalue()


def normalize_email(raw: str) -> str:
    """Stripped and lower-cased: ``Ann@Example.com`` and ``ann@example.com`` are one guest. A
    refusal quotes the address as typed and says what is wrong (invitations/address_problems)."""
    email = raw.strip()
    if _CONTROL.search(email):
        raise ValidationError("the email address contains a line break or control character")
    if not email:
        raise ValidationError("no email address")
    if len(email) > MAX_EMAIL:
        raise ValidationError(f"the email address is longer than {MAX_EMAIL} characters")
    try:
        validate_email(email)
    except ValidationError:
        raise ValidationError(email_problem(email)) from None
    return email.lower()


def clean_name(raw: str) -> str:
    name = raw.strip()
    if len(name) >= 2 and name[0] == name[-1] == '"':
        name = name[1:-1].strip()
    if _CONTROL.search(name):
        raise ValidationError("the name contains a line break or control character")
    if len(name) > MAX_NAME:
        raise ValidationError(f"the name is longer than {MAX_NAME} characters")
    return name


def looks_like_email(value: str) -> bool:
    return "@" in value


def split_entry(text: str) -> tuple[str, str]:
    """(email, name) from one pasted entry, before validation."""
    match = _ANGLE.match(text)
    if match:
        return match["email"], match["name"]
    for separator in ("\t", ",", ";"):
        if separator in text:
            first, second = (part.strip() for part in text.split(separator, 1))
            if not looks_like_email(first) and looks_like_email(second):
                return second, first
            return first, second
    return text, ""


def guest_from(email_raw: str, name_raw: str, line: int) -> Guest:
    return Guest(email=normalize_email(email_raw), name=clean_name(name_raw), line=line)


class _Collector:
    def __init__(self) -> None:
        self.result = GuestList()
        self.first_seen: dict[str, int] = {}

    def add(self, line: int, text: str, email_raw: str, name_raw: str) -> None:
        try:
            guest = guest_from(email_raw, name_raw, line)
        except ValidationError as exc:
            self.result.errors.append(LineError(line, text[:200], exc.messages[0]))
            return
        first = self.first_seen.get(guest.email)
        if first is not None:
            self.result.duplicates.append(Duplicate(line, guest.email, first))
            return
        self.first_seen[guest.email] = line
        self.result.guests.append(guest)


def refused(message: str) -> GuestList:
    return GuestList(refused=message)


def too_many(count: int) -> GuestList:
    limit = settings.GPMAS_GUEST_LIST_MAX_LINES
    return refused(f"The list has more than {limit:,} guests ({count:,} or more). Split it up.")


def too_large(size: int) -> GuestList | None:
    limit = settings.GPMAS_GUEST_LIST_MAX_BYTES
    if size > limit:
        return refused(
            f"The list is {size:,} bytes; at most {limit:,} bytes are accepted. Split it up."
        )
    return None


def guests_parse_text(text: str) -> GuestList:
    """A pasted list: one guest per line; blank lines and ``#`` comments are skipped."""
    refusal = too_large(len(text.encode()))
    if refusal:
        return refusal
    collector = _Collector()
    # Split on LF only, so the line numbers match what the organizer sees; a stray CR or
    # Unicode line separator inside a line is then reported as an error on that line.
    for number, raw in enumerate(text.split("\n"), start=1):
        entry = raw.removesuffix("\r").strip()
        if not entry or entry.startswith("#"):
            continue
        if collector.result.lines >= settings.GPMAS_GUEST_LIST_MAX_LINES:
            return too_many(collector.result.lines + 1)
        email_raw, name_raw = split_entry(entry)
        collector.add(number, entry, email_raw, name_raw)
    return collector.result


def guests_parse_csv(data: bytes, *, sniff: bool = True) -> GuestList:
    """A CSV file (UTF-8, comma, semicolon or tab separated, header optional).

    ``sniff=False`` reads plain comma-separated CSV: the canonical form of ``canonical_csv``.
    """
    refusal = too_large(len(data))
    if refusal:
        return refusal
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return refused(
            f"The file is not UTF-8 text (byte {exc.start + 1}). Save it as “CSV UTF-8” and "
            "upload it again."
        )
    if "\x00" in text:
        return refused("The file is not a text file.")
    dialect: type[csv.Dialect] = csv.excel
    if sniff:
        # One column, or nothing to go by: plain CSV.
        with contextlib.suppress(csv.Error):
            dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    collector = _Collector()
    columns: tuple[int, int | None] | None = None
    first_row = True
    previous_end = 0
    try:
        for row in reader:
            line, previous_end = previous_end + 1, reader.line_num
            cells = [cell.strip() for cell in row]
            if not any(cells) or cells[0].startswith("#"):
                continue
            if first_row:
                first_row = False
                columns = header_columns(cells)
                if columns is not None:
                    continue
            if collector.result.lines >= settings.GPMAS_GUEST_LIST_MAX_LINES:
                return too_many(collector.result.lines + 1)
            email_raw, name_raw = row_entry(cells, columns)
            collector.add(line, ",".join(cells), email_raw, name_raw)
    except csv.Error as exc:
        collector.result.errors.append(LineError(previous_end + 1, "", f"unreadable CSV: {exc}"))
    return collector.result


def header_columns(cells: list[str]) -> tuple[int, int | None] | None:
    """(email column, name column) when the row is a header, else None."""
    lowered = [cell.lower() for cell in cells]
    for label in ("email", "e-mail", "email address", "mail"):
        if label in lowered:
            email_column = lowered.index(label)
            name_column = next(
                (i for i, cell in enumerate(lowered) if cell in ("name", "full name", "guest")),
                None,
            )
            return email_column, name_column
    return None


def row_entry(cells: list[str], columns: tuple[int, int | None] | None) -> tuple[str, str]:
    if columns is not None:
        email_column, name_column = columns
        email_raw = cells[email_column] if email_column < len(cells) else ""
        name_raw = (
            cells[name_column] if name_column is not None and name_column < len(cells) else ""
        )
        return email_raw, name_raw
    filled = [cell for cell in cells if cell]
    if len(filled) == 1:
        return split_entry(filled[0])
    first, second = filled[0], filled[1]
    if not looks_like_email(first) and looks_like_email(second):
        return second, first
    return first, second

"""Forms: a guest list (pasted or a CSV file) and a guest's answer."""

from __future__ import annotations

from django import forms
from django.conf import settings

from invitations.guestlist import GuestList, guests_parse_csv, guests_parse_text

# Django shows help text as HTML: the angle brackets are written as entities.
GUEST_HELP = (
    "One guest per line: “Name &lt;email&gt;”, “email”, or “email, name”. Or choose a CSV "
    "file with an email column and, if you like, a name column."
)


class GuestListFields(forms.Form):
    """A pasted list or an uploaded CSV; the parsed list ends up in ``self.guest_list``."""

    guests = forms.CharField(
        label="Guests",
        required=False,
        help_text=GUEST_HELP,
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false"}),
    )
    guests_file = forms.FileField(
        label="or a CSV file",
        required=False,
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv,text/plain"}),
    )
    # When the list has line errors: True refuses the whole form (event creation), False keeps
    # the form valid and leaves the errors to a preview (inviting into an existing event).
    line_errors_invalidate = True

    guest_list: GuestList

    def drop_guest_fields(self) -> None:
        del self.fields["guests"]
        del self.fields["guests_file"]

    def clean_guest_list(self) -> None:
        self.guest_list = GuestList()
        if "guests" not in self.fields:
            return
        upload = self.cleaned_data.get("guests_file")
        if upload:
            limit = settings.GPMAS_GUEST_LIST_MAX_BYTES
            if upload.size > limit:
                self.add_error(
                    "guests_file",
                    f"The file is {upload.size:,} bytes; at most {limit:,} bytes are accepted.",
                )
                return
            self.guest_list = guests_parse_csv(upload.read())
            field = "guests_file"
        else:
            self.guest_list = guests_parse_text(self.cleaned_data.get("guests", ""))
            field = "guests"
        if self.guest_list.refused:
            self.add_error(field, self.guest_list.refused)
        elif self.line_errors_invalidate and self.guest_list.errors:
            count = len(self.guest_list.errors)
            self.add_error(
                field,
                f"{count} line{'s' if count != 1 else ''} of the guest list "
                f"{'have' if count != 1 else 'has'} problems (listed below). Nothing was saved.",
            )


class GuestListForm(GuestListFields):
    line_errors_invalidate = False

    def clean(self) -> dict:
        data = super().clean()
        self.clean_guest_list()
        if not self.errors and not self.guest_list.lines:
            self.add_error("guests", "Paste at least one guest, or choose a CSV file.")
        return data


class AnswerForm(forms.Form):
    party_size = forms.TypedChoiceField(label="How many of you are coming?", coerce=int)

    def __init__(self, *args, max_party_size: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["party_size"].choices = [
            (n, "Just me" if n == 1 else f"Me and {n - 1} guest{'s' if n > 2 else ''}")
            for n in range(1, max_party_size + 1)
        ]

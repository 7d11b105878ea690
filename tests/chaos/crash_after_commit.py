"""Scenario 5's victim: write a batch of email jobs in one transaction, then die inside the
on-commit hooks before the drain nudge is published (``os._exit``: no cleanup, no flush).

Run as ``python -m tests.chaos.crash_after_commit LABEL COUNT`` with the test database in
DATABASE_URL. Exits with status 3 after the commit; any other status means it failed earlier.
"""

import os
import sys

import django

CRASHED = 3


def main(label: str, count: int) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gpmas.settings")
    django.setup()
    from django.db import transaction

    from delivery.services import EmailDraft, email_enqueue

    with transaction.atomic():
        # Registered before the enqueue's own nudge, so it runs first: the rows are committed,
        # the process is gone, and no drain was asked for.
        transaction.on_commit(lambda: os._exit(CRASHED))
        email_enqueue(
            EmailDraft(
                kind="test",
                to_email=f"{label}{i}@example.com",
                subject=f"{label} #{i}",
                text_body="written, then the writer died",
                topic=label,
            )
            for i in range(count)
        )
    sys.exit("the on-commit hook did not run")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))

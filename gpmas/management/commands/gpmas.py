"""Operations: ``manage.py gpmas <subcommand>``. Each exits non-zero with one line on bad input."""

import redis
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from delivery import dispatch, selectors, services


def one_line(error: ValidationError) -> str:
    if hasattr(error, "message_dict"):
        return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in error.message_dict.items())
    return " ".join(error.messages)


class Command(BaseCommand):
    help = "GPMAS operations: status, send-test, drain."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
        send_test = sub.add_parser("send-test", help="queue one test email per enabled provider")
        send_test.add_argument("email")
        send_test.add_argument("--provider", default="", help="only this provider (by name)")
        sub.add_parser("drain", help="run one drain of the outbox now")
        sub.add_parser("status", help="providers' live state and the queue")

    def handle(self, *args, subcommand: str, **options):
        getattr(self, "handle_" + subcommand.replace("-", "_"))(**options)

    def handle_send_test(self, *, email: str, provider: str, **_):
        try:
            jobs = services.email_enqueue_provider_tests(to_email=email, provider_name=provider)
        except ValidationError as exc:
            raise CommandError(one_line(exc)) from None
        for job in jobs:
            self.stdout.write(f"queued test email #{job.pk} through {job.pinned_provider.name}")

    def handle_drain(self, **_):
        report = dispatch.outbox_drain()
        if not report.ran:
            raise CommandError(f"drain did not run: {report.reason}")
        self.stdout.write(
            f"dispatched {report.dispatched} job(s), reconciled {report.reconciled}"
            + (f" ({report.reason})" if report.reason else "")
        )

    def handle_status(self, **_):
        try:
            health = selectors.provider_health()
        except redis.RedisError as exc:
            raise CommandError(f"cannot read provider state: Redis unavailable ({exc})") from None
        rows = [("provider", "kind", "on", "weight", "state", "penalty", "fails", "quota today",
                 "last error")]  # fmt: skip
        for item in health:
            p, view = item.provider, item.view
            rows.append((p.name, p.kind, "yes" if p.enabled else "no", str(p.weight), item.state,
                         f"{view.penalty:.1f}", str(view.consecutive_failures), item.quota,
                         view.last_error[:40]))  # fmt: skip
        self.stdout.write(format_table(rows))
        depth = selectors.queue_depth()
        self.stdout.write("\nqueue: " + ", ".join(f"{k} {v}" for k, v in depth.items()))
        age = selectors.oldest_due_age_seconds()
        self.stdout.write(f"oldest due job: {'none' if age is None else f'{age:.0f}s old'}")


def format_table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
             for row in rows]  # fmt: skip
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)

"""Operations: ``manage.py gpmas <subcommand>``. Each exits non-zero with one line on bad input."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from delivery import dispatch, services


def one_line(error: ValidationError) -> str:
    if hasattr(error, "message_dict"):
        return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in error.message_dict.items())
    return " ".join(error.messages)


class Command(BaseCommand):
    help = "GPMAS operations: send-test, drain."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
        send_test = sub.add_parser("send-test", help="queue one test email per enabled provider")
        send_test.add_argument("email")
        send_test.add_argument("--provider", default="", help="only this provider (by name)")
        sub.add_parser("drain", help="run one drain of the outbox now")

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

"""Operations: ``manage.py gpmas <subcommand>``. Each exits non-zero with one line on bad input."""

import datetime as dt

import redis
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from delivery import availability, reputation, selectors, services, tasks
from delivery.models import EmailJob
from gpmas import system
from reliability import halt


def one_line(error: ValidationError) -> str:
    if hasattr(error, "message_dict"):
        return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in error.message_dict.items())
    return " ".join(error.messages)


class Command(BaseCommand):
    help = "GPMAS operations: status, halt, resume, drain, retry, send-test."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
        send_test = sub.add_parser("send-test", help="queue one test email per enabled provider")
        send_test.add_argument("email")
        send_test.add_argument("--provider", default="", help="only this provider (by name)")
        sub.add_parser("drain", help="run one drain of the outbox now")
        sub.add_parser("status", help="system state, providers' live state and the queue")
        halt_parser = sub.add_parser("halt", help="stop all sending now")
        halt_parser.add_argument("--reason", required=True, help="why (recorded in the audit log)")
        resume = sub.add_parser("resume", help="resume sending; the drain runs at once")
        resume.add_argument("--reason", default="", help="why (recorded in the audit log)")
        retry = sub.add_parser("retry", help="requeue failed jobs (each as a fresh copy)")
        retry.add_argument(
            "--failed-since",
            required=True,
            help="an ISO date or time (2026-11-28, 2026-11-28T09:00) or an age (30m, 2h, 1d)",
        )

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
        report = tasks.drain_now()
        if not report.ran:
            raise CommandError(f"drain did not run: {report.reason}")
        self.stdout.write(
            f"dispatched {report.dispatched} job(s), reconciled {report.reconciled}"
            + (f" ({report.reason})" if report.reason else "")
        )

    def handle_halt(self, *, reason: str, **_):
        try:
            halt.system_halt(reason=reason, source="command")
        except ValidationError as exc:
            raise CommandError(one_line(exc)) from None
        self.stdout.write("All sending is halted.")

    def handle_resume(self, *, reason: str, **_):
        try:
            halt.system_resume(reason=reason, source="command")
        except ValidationError as exc:
            raise CommandError(one_line(exc)) from None
        self.stdout.write("Sending resumed; the drain runs now.")

    def handle_retry(self, *, failed_since: str, **_):
        since = parse_since(failed_since)
        failed = EmailJob.objects.filter(status=EmailJob.Status.FAILED, finished_at__gte=since)
        job_ids = list(failed.values_list("pk", flat=True))
        with transaction.atomic():
            count = services.email_jobs_retry_now(job_ids=job_ids)
        when = since.isoformat(timespec="minutes")
        self.stdout.write(f"requeued {count} failed job(s) that failed since {when}")

    def handle_status(self, **_):
        state = system.system_state(staff=True)
        now = timezone.localtime(timezone=availability.operator_zone())
        self.stdout.write(f"at {now:%Y-%m-%d %H:%M:%S %Z} ({settings.GPMAS_TIME_ZONE})")
        self.stdout.write(f"system: {state.code} - {state.message}\n")
        try:
            health = selectors.provider_health()
        except redis.RedisError as exc:
            raise CommandError(f"cannot read provider state: Redis unavailable ({exc})") from None
        latency = selectors.latencies(minutes=5)
        rows = [STATUS_COLUMNS] + [
            status_row(item, latency.get(item.provider.pk)) for item in health
        ]
        self.stdout.write(format_table(rows))
        self.stdout.write("\nbounces and complaints per message sent, last 24 h:")
        self.stdout.write(reputation_table(health))
        depth = selectors.queue_depth()
        self.stdout.write("\nqueue: " + ", ".join(f"{k} {v}" for k, v in depth.items()))
        age = selectors.oldest_due_age_seconds()
        self.stdout.write(f"oldest due job: {'none' if age is None else f'{age:.0f}s old'}")
        events = selectors.delivery_event_counts(hours=24)
        self.stdout.write(
            f"delivery events (24 h): {events['events']}, {events['unmatched']} matching no job;"
            f" suppressed addresses: {events['suppressed']}"
        )
        self.stdout.write("\nstates:")
        for term, text in availability.legend():
            self.stdout.write(f"  {term:<9} {text}")


STATUS_COLUMNS = (
    "provider",
    "kind",
    "on",
    "weight",
    "state",
    "penalty",
    "fails",
    "p50/p95 ms (5 min)",
    "in flight",
    "quota today",
    "last error",
)


def status_row(item: selectors.ProviderHealth, latency: selectors.Latency | None) -> tuple:
    p, view = item.provider, item.view
    timing = f"{latency.p50_ms:.0f} / {latency.p95_ms:.0f}" if latency else "-"
    return (
        p.name,
        p.kind,
        "yes" if p.enabled else "no",
        str(p.weight),
        item.state,
        f"{view.penalty:.1f}",
        str(view.consecutive_failures),
        timing,
        str(view.in_flight),
        item.quota,
        view.last_error[:40],
    )


def reputation_table(health: list[selectors.ProviderHealth]) -> str:
    """Bounces and complaints per message over 24 h, flagged over SES's review thresholds."""
    rates = reputation.reputations()
    rows = [("provider", "bounces", "complaints", "warning")]
    for item in health:
        rate = rates.get(item.provider.pk, reputation.Reputation())
        warning = "; ".join(rate.warnings()) or "-"
        rows.append((item.provider.name, rate.bounce_text(), rate.complaint_text(), warning))
    table = "\n".join("  " + line for line in format_table(rows).splitlines())
    return f"{table}\n  {reputation.NOTE}"


def parse_since(raw: str) -> dt.datetime:
    """An ISO date/time (in UTC unless it says otherwise) or an age such as 30m, 2h, 1d."""
    value = raw.strip()
    units = {"m": "minutes", "h": "hours", "d": "days"}
    if value[:-1].isdigit() and value[-1:] in units:
        return timezone.now() - dt.timedelta(**{units[value[-1]]: int(value[:-1])})
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(
            f"--failed-since: {raw!r} is neither an ISO date/time nor an age like 30m, 2h, 1d"
        ) from None
    if timezone.is_naive(moment):
        moment = moment.replace(tzinfo=dt.UTC)
    if moment > timezone.now():
        raise CommandError(f"--failed-since: {raw!r} is in the future")
    return moment


def format_table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)

"""Benchmark 1, fan-out: N queued messages handed to one sink, by each contestant in turn.

Every contestant sends the same messages (same sender, subjects, bodies and headers) to the same
sink. The SMTP sink is Postfix's ``smtp-sink`` (in C, no ceiling worth the name; see
bench/postfix_sink.py); the SendGrid sink is the sandbox's emulator. The clock starts when
sending is let loose on an already-written queue and stops at the last acceptance:

- GPMAS: the full pipeline. Two Celery workers (pool of two each) and beat, PostgreSQL, Redis,
  the drain, ranking, quotas, the halt check before every call, leases, attempts, with GPMAS's
  default settings. The queue is written while sending is halted; the clock starts at resume (which
  nudges the drain) and stops at the last job's ``finished_at``.
- django-post-office: ``send_queued_mail_until_done`` with its default multi-threading (one
  process, five threads, batches of 100), each thread on its own SMTP connection.
- django-mailer: ``send_all()`` (one process, one connection), as its cron job runs it.
- bare loop: one process per connection GPMAS uses (4), each sending its share in a plain loop
  of smtplib (or of the sendgrid SDK) with no database, no retries, nothing recorded.

Besides msg/s, each row has the contestant's own CPU time per message (bench/cpu.py: every
process it runs, PostgreSQL and Redis included, the sinks not) and the machine's.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import smtplib
from email.message import EmailMessage

from bench.postfix_sink import PostfixSink, SinkUnavailable, find_or_install
from bench.processes import start_beat, start_workers
from bench.stack import configure_sandbox_providers, sandbox_reset, sandbox_stats, wait_until
from bench.window import Window

SINK_PROVIDER = "bench-smtp-sink"

FROM_EMAIL = "GPMAS Bench <bench@example.com>"
WORKERS = 2  # Celery worker processes...
POOL = 2  # ...each with a pool of two sending processes, as the Procfile runs it
CONNECTIONS = WORKERS * POOL  # one SMTP connection (or HTTP client) per sending process
BODY = (
    "You are invited to the GPMAS benchmark dinner.\n\n"
    "When: Saturday 5 December 2026, 19:00\nWhere: The Long Room, 1 Bench Street\n\n"
    "Accept or decline: https://gpmas.example.com/i/{token}\n\n"
    "This invitation was sent by the organizer through GPMAS.\n"
) * 2


def draft(i: int) -> dict:
    return {
        "to_email": f"guest{i}@example.com",
        "subject": f"Invitation #{i}: the benchmark dinner",
        "text_body": BODY.format(token=f"{i:064x}"),
    }


# --- the sinks -------------------------------------------------------------------------------
class SendGridSink:
    """The sandbox's SendGrid emulator."""

    kind = "sendgrid"
    provider = "sandbox-sendgrid"

    def reset(self) -> None:
        sandbox_reset()

    def accepted(self) -> int:
        return sandbox_stats()["sendgrid"]["messages"]


class SmtpSink:
    """Postfix's smtp-sink, counted from where the contestant started."""

    kind = "smtp"
    provider = SINK_PROVIDER

    def __init__(self, sink: PostfixSink) -> None:
        self.sink, self.port = sink, sink.port
        self.before = 0

    def reset(self) -> None:
        self.before = self.sink.accepted()

    def accepted(self) -> int:
        return self.sink.accepted() - self.before


def _sink_provider(port: int) -> None:
    """A provider row for smtp-sink: plain SMTP, no login (smtp-sink answers AUTH with 250)."""
    from delivery.models import Provider

    Provider.objects.update_or_create(
        name=SINK_PROVIDER,
        defaults={"kind": "smtp", "host": "127.0.0.1", "port": port, "enabled": False},
    )


# --- GPMAS ----------------------------------------------------------------------------------
def _only_provider(name: str):
    """Enable exactly one provider (the sink under test), with a daily quota on."""
    from delivery import provider_state
    from delivery.models import Provider

    Provider.objects.update(enabled=False)
    provider = Provider.objects.get(name=name)
    provider.enabled = True
    provider.daily_quota = 10_000_000  # the quota path runs (reserve, count) but never binds
    provider.save()
    provider_state.reset(provider)
    return provider


def gpmas_run(sink, count: int, sink_pids: list[int]) -> dict:
    from django.db.models import Max

    from delivery.models import EmailJob
    from delivery.services import EmailDraft, email_enqueue
    from reliability.halt import system_halt, system_resume

    EmailJob.objects.all().delete()
    _only_provider(sink.provider)
    sink.reset()
    system_halt(reason="benchmark: writing the queue", source="bench")
    email_enqueue(EmailDraft(kind="test", from_email=FROM_EMAIL, **draft(i)) for i in range(count))
    sent = EmailJob.objects.filter(status=EmailJob.Status.SENT)
    with Window(sink_pids) as window:
        system_resume(reason="benchmark: go", source="bench")
        wait_until(
            lambda: sent.count() >= count,
            timeout=max(120, count / 20),
            interval=0.25,
            what=f"{count} GPMAS jobs sent",
        )
    last = EmailJob.objects.aggregate(last=Max("finished_at"))["last"]
    accepted = sink.accepted()
    not_sent = EmailJob.objects.exclude(status=EmailJob.Status.SENT).count()
    attempts = sum(EmailJob.objects.values_list("attempts", flat=True))
    return {
        **window.figures(count, last.timestamp() - window.started),
        "accepted": accepted,
        "check": f"{count - not_sent}/{count} sent, {attempts} attempts, {accepted} at the sink",
        "ok": accepted == count and not_sent == 0 and attempts == count,
    }


# --- django-post-office and django-mailer ---------------------------------------------------
def _point_django_mail_at(port: int) -> None:
    """Django's SMTP backend (post-office's and mailer's) reads these when it connects."""
    from django.conf import settings

    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""


def post_office_run(sink: SmtpSink, count: int, sink_pids: list[int]) -> dict:
    from post_office import mail
    from post_office.models import STATUS, Email

    Email.objects.all().delete()
    _point_django_mail_at(sink.port)
    sink.reset()
    mail.send_many(
        [
            {
                "sender": FROM_EMAIL,
                "recipients": [d["to_email"]],
                "subject": d["subject"],
                "message": d["text_body"],
            }
            for d in map(draft, range(count))
        ]
    )
    with Window(sink_pids) as window:
        mail.send_queued_mail_until_done(processes=1)
    sent = Email.objects.filter(status=STATUS.sent).count()
    accepted = sink.accepted()
    return {
        **window.figures(count),
        "accepted": accepted,
        "check": f"{sent}/{count} sent, {accepted} at the sink",
        "ok": sent == count == accepted,
    }


def mailer_run(sink: SmtpSink, count: int, sink_pids: list[int]) -> dict:
    from django.core.mail import EmailMessage as DjangoEmail
    from mailer import engine
    from mailer.models import Message, MessageLog

    Message.objects.all().delete()
    MessageLog.objects.all().delete()
    _point_django_mail_at(sink.port)
    sink.reset()
    for d in map(draft, range(count)):
        email = DjangoEmail(d["subject"], d["text_body"], FROM_EMAIL, [d["to_email"]])
        Message.objects.create(email=email)  # what mailer.send_mail() does, minus the backend
    with Window(sink_pids) as window:
        engine.send_all()
    sent = MessageLog.objects.filter(result="1").count()
    accepted = sink.accepted()
    return {
        **window.figures(count),
        "accepted": accepted,
        "check": f"{sent}/{count} sent, {accepted} at the sink",
        "ok": sent == count == accepted,
    }


# --- bare loops -----------------------------------------------------------------------------
def _smtp_share(args) -> int:
    port, numbers = args
    connection = smtplib.SMTP("127.0.0.1", port, timeout=20)
    for i in numbers:
        d = draft(i)
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = FROM_EMAIL, d["to_email"], d["subject"]
        message.set_content(d["text_body"])
        connection.send_message(message)
    connection.quit()
    return len(numbers)


def _sendgrid_share(args) -> int:
    from sendgrid import SendGridAPIClient

    url, api_key, numbers = args
    client = SendGridAPIClient(api_key=api_key, host=url)
    client.client.timeout = 20
    for i in numbers:
        d = draft(i)
        client.client.mail.send.post(
            request_body={
                "personalizations": [{"to": [{"email": d["to_email"]}]}],
                "from": {"email": "bench@example.com", "name": "GPMAS Bench"},
                "subject": d["subject"],
                "content": [{"type": "text/plain", "value": d["text_body"]}],
            }
        )
    return len(numbers)


def bare_run(sink, count: int, sink_pids: list[int]) -> dict:
    from sandbox import config

    sink.reset()
    shares = [list(range(w, count, CONNECTIONS)) for w in range(CONNECTIONS)]
    if sink.kind == "smtp":
        target, jobs = _smtp_share, [(sink.port, share) for share in shares]
    else:
        sandbox = config.load()
        target, jobs = _sendgrid_share, [(sandbox.http_url, sandbox.api_key, s) for s in shares]
    context = multiprocessing.get_context("spawn")  # no inherited Django connections
    with concurrent.futures.ProcessPoolExecutor(CONNECTIONS, mp_context=context) as pool:
        list(pool.map(abs, [0] * CONNECTIONS))  # start the processes before the clock
        with Window(sink_pids) as window:
            done = sum(pool.map(target, jobs))
    accepted = sink.accepted()
    return {
        **window.figures(count),
        "accepted": accepted,
        "check": f"{done}/{count} sent, {accepted} at the sink",
        "ok": done == count == accepted,
    }


# --- the benchmark ----------------------------------------------------------------------------
def run(count: int) -> list[dict]:
    from bench import processes

    configure_sandbox_providers()
    try:
        postfix = PostfixSink(find_or_install())
    except SinkUnavailable as exc:
        print(f"  the SMTP table is skipped: {exc}", flush=True)
        postfix = None
    smtp = SmtpSink(postfix) if postfix else None
    sendgrid = SendGridSink()
    sink_pids = [processes.sandbox_pid(), *([postfix.pid] if postfix else [])]
    if smtp:
        _sink_provider(smtp.port)
    rows = []

    def measure(sink, contestant: str, result: dict) -> None:
        result.update(
            sink=sink.kind,
            contestant=contestant,
            messages=count,
            per_second=count / result["seconds"],
        )
        rows.append(result)
        print(
            f"  {sink.kind:<9} {contestant:<34} {result['per_second']:>8.0f} msg/s  "
            f"({result['seconds']:.1f} s, {result['check']})",
            flush=True,
        )

    try:
        workers = [*start_workers(WORKERS, concurrency=POOL), start_beat()]
        try:
            gpmas = f"GPMAS ({WORKERS} workers x {POOL})"
            if smtp:
                measure(smtp, gpmas, gpmas_run(smtp, count, sink_pids))
            measure(sendgrid, gpmas, gpmas_run(sendgrid, count, sink_pids))
        finally:
            for worker in workers:
                worker.stop()
        if smtp:
            measure(smtp, "django-post-office send_queued", post_office_run(smtp, count, sink_pids))
            measure(smtp, "django-mailer send_all", mailer_run(smtp, count, sink_pids))
            measure(
                smtp, f"bare smtplib loop ({CONNECTIONS} conn.)", bare_run(smtp, count, sink_pids)
            )
        measure(
            sendgrid,
            f"bare sendgrid SDK loop ({CONNECTIONS} proc.)",
            bare_run(sendgrid, count, sink_pids),
        )
    finally:
        if postfix:
            postfix.stop()
    for row in rows:
        gpmas = next(r for r in rows if r["sink"] == row["sink"] and r["contestant"][:5] == "GPMAS")
        row["gpmas_ratio"] = gpmas["per_second"] / row["per_second"]
    return rows

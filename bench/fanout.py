"""Benchmark 1, fan-out: N queued messages handed to one sink, by each contestant in turn.

Every contestant sends the same messages (same sender, subjects, bodies and headers) to the same
sandbox process, with the sink emptied between runs. The clock starts when sending is let loose
on an already-written queue and stops at the last acceptance:

- GPMAS: the full pipeline. Two Celery workers (pool of two each) and beat, PostgreSQL, Redis,
  the drain, ranking, quotas, the halt check before every call, leases, attempts, with GPMAS's
  default settings. The queue is written while sending is halted; the clock starts at resume (which
  nudges the drain) and stops at the last job's ``finished_at``.
- django-post-office: ``send_queued_mail_until_done`` with its default multi-threading (one
  process, five threads, batches of 100), each thread on its own SMTP connection.
- django-mailer: ``send_all()`` (one process, one connection), as its cron job runs it.
- bare loop: one process per connection GPMAS uses (4), each sending its share in a plain loop
  of smtplib (or of the sendgrid SDK) with no database, no retries, nothing recorded.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import smtplib
from email.message import EmailMessage

from bench.processes import start_beat, start_workers
from bench.stack import configure_sandbox_providers, sandbox_reset, sandbox_stats, wait_until
from bench.window import Window

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


# --- GPMAS ----------------------------------------------------------------------------------
def _only_provider(kind: str):
    """Enable exactly one sandbox provider (the sink under test), with a daily quota on."""
    from delivery import provider_state
    from delivery.models import Provider

    Provider.objects.update(enabled=False)
    provider = Provider.objects.get(kind=kind, name__startswith="sandbox-")
    provider.enabled = True
    provider.daily_quota = 10_000_000  # the quota path runs (reserve, count) but never binds
    provider.save()
    provider_state.reset(provider)
    return provider


def gpmas_run(kind: str, count: int) -> dict:
    from django.db.models import Max

    from delivery.models import EmailJob
    from delivery.services import EmailDraft, email_enqueue
    from reliability.halt import system_halt, system_resume

    EmailJob.objects.all().delete()
    _only_provider(kind)
    sandbox_reset()
    system_halt(reason="benchmark: writing the queue", source="bench")
    email_enqueue(EmailDraft(kind="test", from_email=FROM_EMAIL, **draft(i)) for i in range(count))
    sent = EmailJob.objects.filter(status=EmailJob.Status.SENT)
    with Window() as window:
        system_resume(reason="benchmark: go", source="bench")
        wait_until(
            lambda: sent.count() >= count,
            timeout=max(120, count / 20),
            interval=0.25,
            what=f"{count} GPMAS jobs sent",
        )
    last = EmailJob.objects.aggregate(last=Max("finished_at"))["last"]
    accepted = sandbox_stats()[kind]["messages"]
    not_sent = EmailJob.objects.exclude(status=EmailJob.Status.SENT).count()
    attempts = sum(EmailJob.objects.values_list("attempts", flat=True))
    return {
        **window.figures(count, last.timestamp() - window.started),
        "accepted": accepted,
        "check": f"{count - not_sent}/{count} sent, {attempts} attempts",
        "ok": accepted == count and not_sent == 0 and attempts == count,
    }


# --- django-post-office and django-mailer ---------------------------------------------------
def post_office_run(count: int) -> dict:
    from post_office import mail
    from post_office.models import STATUS, Email

    Email.objects.all().delete()
    sandbox_reset()
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
    with Window() as window:
        mail.send_queued_mail_until_done(processes=1)
    sent = Email.objects.filter(status=STATUS.sent).count()
    accepted = sandbox_stats()["smtp"]["messages"]
    return {
        **window.figures(count),
        "accepted": accepted,
        "check": f"{sent}/{count} sent",
        "ok": sent == count == accepted,
    }


def mailer_run(count: int) -> dict:
    from mailer import engine
    from mailer.models import Message, MessageLog

    Message.objects.all().delete()
    MessageLog.objects.all().delete()
    sandbox_reset()
    from django.core.mail import EmailMessage as DjangoEmail

    for d in map(draft, range(count)):
        email = DjangoEmail(d["subject"], d["text_body"], FROM_EMAIL, [d["to_email"]])
        Message.objects.create(email=email)  # what mailer.send_mail() does, minus the backend
    with Window() as window:
        engine.send_all()
    sent = MessageLog.objects.filter(result="1").count()
    accepted = sandbox_stats()["smtp"]["messages"]
    return {
        **window.figures(count),
        "accepted": accepted,
        "check": f"{sent}/{count} sent",
        "ok": sent == count == accepted,
    }


# --- bare loops -----------------------------------------------------------------------------
def _smtp_share(args) -> int:
    host, port, user, password, numbers = args
    connection = smtplib.SMTP(host, port, timeout=20)
    connection.login(user, password)
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


def bare_run(kind: str, count: int) -> dict:
    from sandbox import config

    sandbox = config.load()
    sandbox_reset()
    shares = [list(range(w, count, CONNECTIONS)) for w in range(CONNECTIONS)]
    if kind == "smtp":
        target, jobs = (
            _smtp_share,
            [
                (
                    "127.0.0.1",
                    sandbox.smtp_port,
                    sandbox.smtp_username,
                    sandbox.smtp_password,
                    share,
                )
                for share in shares
            ],
        )
    else:
        url = sandbox.http_url
        target, jobs = _sendgrid_share, [(url, sandbox.api_key, s) for s in shares]
    context = multiprocessing.get_context("spawn")  # no inherited Django connections
    with concurrent.futures.ProcessPoolExecutor(CONNECTIONS, mp_context=context) as pool:
        list(pool.map(abs, [0] * CONNECTIONS))  # start the processes before the clock
        with Window() as window:
            done = sum(pool.map(target, jobs))
    accepted = sandbox_stats()[kind]["messages"]
    return {
        **window.figures(count),
        "accepted": accepted,
        "check": f"{done}/{count} sent",
        "ok": done == count == accepted,
    }


# --- the benchmark ----------------------------------------------------------------------------
def run(count: int) -> list[dict]:
    configure_sandbox_providers()
    rows = []

    def measure(sink: str, contestant: str, result: dict) -> None:
        result.update(
            sink=sink, contestant=contestant, messages=count, per_second=count / result["seconds"]
        )
        rows.append(result)
        print(
            f"  {sink:<9} {contestant:<34} {result['per_second']:>8.0f} msg/s  "
            f"({result['seconds']:.1f} s, {result['check']})",
            flush=True,
        )

    workers = [*start_workers(WORKERS, concurrency=POOL), start_beat()]
    try:
        gpmas = f"GPMAS ({WORKERS} workers x {POOL})"
        measure("smtp", gpmas, gpmas_run("smtp", count))
        measure("sendgrid", gpmas, gpmas_run("sendgrid", count))
    finally:
        for worker in workers:
            worker.stop()
    measure("smtp", "django-post-office send_queued", post_office_run(count))
    measure("smtp", "django-mailer send_all", mailer_run(count))
    measure("smtp", f"bare smtplib loop ({CONNECTIONS} conn.)", bare_run("smtp", count))
    measure(
        "sendgrid", f"bare sendgrid SDK loop ({CONNECTIONS} proc.)", bare_run("sendgrid", count)
    )
    for row in rows:
        gpmas = next(r for r in rows if r["sink"] == row["sink"] and r["contestant"][:5] == "GPMAS")
        row["gpmas_ratio"] = gpmas["per_second"] / row["per_second"]
    return rows


def sink_ceiling(rows: list[dict], sink: str = "smtp") -> float | None:
    """Messages a second the sink could take at most: its one thread 100 % busy, at the lowest
    cost per message any contestant caused. No client can be faster than this."""
    costs = [
        r["sink_ms_per_message"] for r in rows if r["sink"] == sink and "sink_ms_per_message" in r
    ]
    return 1000 / min(costs) if costs else None

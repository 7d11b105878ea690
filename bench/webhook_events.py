"""Benchmark 7 (issue #16's proof): webhook events posted by 20 concurrent clients against a
real web process (gunicorn, PostgreSQL), as providers post them: SendGrid's Signed Event Webhook
in batches of 1 to 8 events, Mailgun's signed posts one event each; a fifth of the events posted
are redeliveries of others (signed again, as a provider's retry is), all in random order.

Checked afterwards: every post answered 200 (no 500), every distinct event is stored exactly
once, and every job's delivery state is the best of its events' ("best status wins",
``delivery.delivery_state.RANK``). Reported: events and posts per second, wall time.

    ./dev bench webhook_events                     # 10,000 events, 20 clients
    ./dev bench webhook_events --webhook-events 2000

The small version runs in the tests (tests/delivery/webhooks/test_webhook_load.py) against
runserver; the functions below are shared.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import random
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

CLIENTS = 20
DUPLICATE_SHARE = 0.2
EVENTS_PER_JOB = 4
BASIC = ("hooks", "bench-" + uuid.uuid4().hex[:12])
MAILGUN_KEY = "bench-mailgun-" + uuid.uuid4().hex
SENDGRID_KEY = ec.generate_private_key(ec.SECP256R1())
# (provider, what the provider sends, extra fields) -> the delivery state anymail's reading
# gives it (delivery.webhooks.events); "" for events that change no state.
KINDS = [
    ("sendgrid", "processed", {}, ""),
    ("sendgrid", "delivered", {}, "delivered"),
    ("sendgrid", "deferred", {}, "deferred"),
    ("sendgrid", "bounce", {"type": "bounce"}, "bounced_hard"),
    ("sendgrid", "bounce", {"type": "blocked"}, "bounced_soft"),
    ("sendgrid", "spamreport", {}, "complained"),
    ("sendgrid", "unsubscribe", {}, "unsubscribed"),
    ("mailgun", "delivered", {}, "delivered"),
    ("mailgun", "failed", {"severity": "temporary"}, "deferred"),
    ("mailgun", "failed", {"severity": "permanent"}, "bounced_hard"),
    ("mailgun", "complained", {}, "complained"),
    ("mailgun", "unsubscribed", {}, "unsubscribed"),
]
# How often each kind is drawn: mostly good news, as in real traffic.
WEIGHTS = [10, 30, 6, 3, 2, 1, 1, 30, 6, 3, 1, 1]


def web_environment() -> dict[str, str]:
    """What the web process needs to verify the posts: basic auth and both signing keys."""
    der = SENDGRID_KEY.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {
        "GPMAS_WEBHOOK_SECRETS": ":".join(BASIC),
        "GPMAS_MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_KEY,
        "GPMAS_SENDGRID_WEBHOOK_VERIFICATION_KEY": base64.b64encode(der).decode(),
    }


@dataclass(frozen=True)
class Event:
    provider: str
    event_id: str
    job_id: int
    body: dict
    outcome: str


@dataclass
class Plan:
    posts: list[tuple[str, list[Event]]]  # (provider, the events of one post), in posting order
    distinct: list[Event]
    expected_state: dict[int, str]  # job id -> the state best status wins gives

    @property
    def events_posted(self) -> int:
        return sum(len(events) for _, events in self.posts)


def make_plan(jobs: dict[int, str], total: int, *, seed: int = 16) -> Plan:
    """``total`` events for ``jobs`` (id -> address): distinct ones and, for a fifth of the
    total, redeliveries of them, shuffled, then cut into posts."""
    from delivery.delivery_state import RANK

    rng = random.Random(seed)
    ids = list(jobs)
    distinct = []
    for n in range(total - int(total * DUPLICATE_SHARE)):
        job_id = ids[n % len(ids)]
        provider, name, extra, outcome = rng.choices(KINDS, WEIGHTS)[0]
        distinct.append(_event(provider, name, extra, outcome, job_id, jobs[job_id], n))
    stream = distinct + [rng.choice(distinct) for _ in range(total - len(distinct))]
    rng.shuffle(stream)
    best: dict[int, str] = dict.fromkeys(ids, "")
    for event in distinct:
        if RANK[event.outcome] > RANK[best[event.job_id]]:
            best[event.job_id] = event.outcome
    return Plan(_cut(stream, rng), distinct, best)


def _event(provider, name, extra, outcome, job_id, address, n) -> Event:
    stamp = int(time.time()) - 60 + n % 60
    if provider == "sendgrid":
        event_id = f"sg-{uuid.uuid4().hex}"
        body = {
            "email": address,
            "event": name,
            "timestamp": stamp,
            "sg_event_id": event_id,
            "sg_message_id": f"sgmsg.{job_id}",
            "gpmas_job": str(job_id),  # custom_args come back as top-level fields
            **extra,
        }
    else:
        event_id = f"mg-{uuid.uuid4().hex[:22]}"
        body = {
            "id": event_id,
            "event": name,
            "timestamp": stamp,
            "recipient": address,
            "message": {"headers": {"message-id": f"{job_id}@mg.bench"}},
            "user-variables": {"gpmas_job": str(job_id)},
            **extra,
        }
    return Event(provider, event_id, job_id, body, outcome)


def _cut(stream: list[Event], rng: random.Random) -> list[tuple[str, list[Event]]]:
    """Mailgun posts one event each; SendGrid batches consecutive ones, 1 to 8 a post."""
    posts, batch = [], []
    for event in stream:
        if event.provider == "mailgun":
            posts.append(("mailgun", [event]))
            continue
        batch.append(event)
        if len(batch) >= rng.randint(1, 8):
            posts.append(("sendgrid", batch))
            batch = []
    if batch:
        posts.append(("sendgrid", batch))
    return posts


def signed_request(provider: str, events: list[Event]) -> tuple[str, bytes, dict]:
    """Path, body and headers of one post, signed now as the provider signs it."""
    stamp = str(int(time.time()))
    if provider == "sendgrid":
        body = json.dumps([event.body for event in events]).encode()
        signature = SENDGRID_KEY.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        headers = {
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
        }
        return "/webhooks/sendgrid/tracking/", body, headers
    token = uuid.uuid4().hex
    digest = hmac.new(MAILGUN_KEY.encode(), f"{stamp}{token}".encode(), hashlib.sha256)
    signature = {"timestamp": stamp, "token": token, "signature": digest.hexdigest()}
    body = json.dumps({"signature": signature, "event-data": events[0].body}).encode()
    return "/webhooks/mailgun/tracking/", body, {}


@dataclass
class Outcome:
    seconds: float
    statuses: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)


def post_all(base_url: str, plan: Plan, *, clients: int = CLIENTS) -> Outcome:
    """Post the plan's posts from ``clients`` threads, each with its own keep-alive session,
    taking the next post in order; the wall time from the first post to the last answer."""
    lock, position = threading.Lock(), iter(plan.posts)
    outcome = Outcome(0.0)

    def client() -> None:
        session = requests.Session()
        session.auth = BASIC
        while True:
            with lock:
                post = next(position, None)
            if post is None:
                return
            path, body, headers = signed_request(*post)
            headers["Content-Type"] = "application/json"
            try:
                status = session.post(base_url + path, data=body, headers=headers, timeout=60)
                code = status.status_code
            except requests.RequestException as exc:
                code = f"error {type(exc).__name__}"
            with lock:
                outcome.statuses[code] += 1
                if code != 200 and len(outcome.errors) < 5:
                    outcome.errors.append(f"{path}: {code}")

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    outcome.seconds = time.perf_counter() - started
    return outcome


def check(plan: Plan, outcome: Outcome) -> list[str]:
    """What went wrong, in words; empty when everything is as it must be."""
    from delivery.models import DeliveryEvent, EmailJob

    problems = []
    if set(outcome.statuses) != {200}:
        problems.append(f"answers {dict(outcome.statuses)} (first: {outcome.errors})")
    stored = Counter(DeliveryEvent.objects.values_list("provider_kind", "event_id"))
    wanted = {(event.provider, event.event_id) for event in plan.distinct}
    if set(stored) != wanted:
        problems.append(
            f"{len(wanted - set(stored))} events missing, {len(set(stored) - wanted)} extra"
        )
    if twice := [key for key, n in stored.items() if n > 1]:
        problems.append(f"{len(twice)} events stored more than once")
    states = dict(
        EmailJob.objects.filter(pk__in=plan.expected_state).values_list("pk", "delivery_state")
    )
    wrong = [pk for pk, state in plan.expected_state.items() if states.get(pk) != state]
    if wrong:
        problems.append(f"{len(wrong)} jobs not in their best state (e.g. job {wrong[0]})")
    return problems


def summary(plan: Plan, outcome: Outcome, problems: list[str], *, jobs: int, server: str) -> dict:
    return {
        "server": server,
        "clients": CLIENTS,
        "jobs": jobs,
        "events_posted": plan.events_posted,
        "distinct_events": len(plan.distinct),
        "duplicates": plan.events_posted - len(plan.distinct),
        "posts": len(plan.posts),
        "seconds": round(outcome.seconds, 2),
        "events_per_second": round(plan.events_posted / outcome.seconds, 1),
        "posts_per_second": round(len(plan.posts) / outcome.seconds, 1),
        "answers": {str(code): n for code, n in outcome.statuses.items()},
        "check": "ok" if not problems else "; ".join(problems),
    }


def sent_jobs(count: int) -> dict[int, str]:
    """``count`` invitation-like jobs, written through the real enqueue and marked sent."""
    from django.utils import timezone

    from delivery.models import EmailJob
    from delivery.services import EmailDraft, email_enqueue

    run = uuid.uuid4().hex[:6]
    drafts = [
        EmailDraft(kind="test", to_email=f"g{n}-{run}@example.com", subject="Hi", text_body="b")
        for n in range(count)
    ]
    jobs = email_enqueue(drafts)
    ids = [job.pk for job in jobs]
    EmailJob.objects.filter(pk__in=ids).update(status="sent", finished_at=timezone.now())
    return {job.pk: job.to_email for job in jobs}


def run(total: int = 10_000) -> dict:
    """The full-size run, inside ``./dev bench`` (its own database, gunicorn on it)."""
    from bench import cpu, processes, stack

    jobs = sent_jobs(max(1, total // EVENTS_PER_JOB))
    plan = make_plan(jobs, total)
    port = stack.free_port()
    web = processes.Process(
        "gunicorn",
        [
            sys.executable,
            "-m",
            "gunicorn",
            "gpmas.wsgi",
            f"--bind=127.0.0.1:{port}",
            "--workers=4",
            "--threads=4",
            "--log-level=warning",
        ],
        **web_environment(),
    )
    try:
        stack.wait_until(lambda: _answers(port, web), timeout=60, what="gunicorn")
        load_before, cpu_before = os.getloadavg()[0], cpu.tree_seconds(web.popen.pid)
        outcome = post_all(f"http://127.0.0.1:{port}", plan)
        web_cpu = cpu.tree_seconds(web.popen.pid) - cpu_before
    finally:
        web.stop()
    problems = check(plan, outcome)
    result = summary(
        plan, outcome, problems, jobs=len(jobs), server="gunicorn, 4 workers x 4 threads"
    )
    # CPU per event is what the machine's other load does not change much; the rate is not.
    result["web_cpu_ms_per_event"] = round(web_cpu * 1000 / plan.events_posted, 2)
    result["load_average"] = [round(load_before, 1), round(os.getloadavg()[0], 1)]
    print_table(result)
    print(
        f"web process CPU {result['web_cpu_ms_per_event']} ms/event; load {result['load_average']}"
    )
    return result


def _answers(port: int, web) -> bool:
    web.check_alive()
    try:
        requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    except requests.RequestException:
        return False
    return True


COLUMNS = ("events posted", "distinct", "duplicates", "posts", "clients", "seconds", "events/s")
KEYS = ("events_posted", "distinct_events", "duplicates", "posts", "clients", "seconds")


def print_table(result: dict) -> None:
    print("\n| " + " | ".join(COLUMNS) + " | posts/s | check |")
    print("|" + "---:|" * (len(COLUMNS) + 1) + "---|")
    cells = [str(result[key]) for key in (*KEYS, "events_per_second", "posts_per_second")]
    print("| " + " | ".join(cells) + f" | {result['check']} |")

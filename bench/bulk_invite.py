"""Benchmark 2, bulk invite: an organizer invites N guests in one request.

The real HTTP path, through Django's test client and the whole middleware stack (sessions,
authentication, messages, rate limit; the test client skips only the CSRF check): a logged-in
organizer pastes N lines ``Name <email>`` into the invite form and previews them (one request),
then confirms with the guest list the preview page posts back (the request that writes N
invitations and N invitation emails in one transaction). Measured on the confirming request:

- wall seconds from the POST to the redirect after the commit;
- SQL queries (captured on the connection, DEBUG off) by statement and table, and whether their
  number is ``a + b * batches`` with ``batches = ceil(N / BATCH_SIZE)``, i.e. constant in N apart
  from the batching;
- memory, from a second, identical invitation into a fresh event with tracemalloc on (it slows
  Python down, so that run is not timed): the peak of Python allocations during the request;
  and the process RSS before and after the timed request.

Every size gets a fresh event (and the rows of a size are deleted before the next one), so the
table sizes do not drift between sizes.
"""

from __future__ import annotations

import contextlib
import gc
import html
import math
import re
import resource
import time
import tracemalloc
import warnings
from collections import Counter

from bench.rows import delete_since, new_event, new_organizer, next_job_id

SIZES = (100, 1000, 10_000)
_HIDDEN_GUESTS = re.compile(r'<input type="hidden" name="guests" value="([^"]*)">')
_TABLE = re.compile(r'(?:\bINTO|\bFROM|^UPDATE)\s+"(\w+)"', re.I)


# --- One size ---------------------------------------------------------------------------------
def pasted(count: int) -> str:
    return "\n".join(f"Guest Number {i} <guest{i}@example.com>" for i in range(count)) + "\n"


def statement_kinds(queries: list[dict]) -> dict[str, int]:
    """'INSERT delivery_emailjob': 10, ... (the first keyword, and the table it names)."""
    kinds: Counter[str] = Counter()
    for query in queries:
        sql = query["sql"].lstrip()
        verb, table = sql.split(None, 1)[0].upper(), _TABLE.search(sql)
        kinds[f"{verb} {table[1]}" if table else verb] += 1
    return dict(sorted(kinds.items()))


def rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def max_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


class Organizer:
    """A logged-in organizer with a fresh event, inviting through the real pages."""

    def __init__(self, label: str) -> None:
        from django.test import Client
        from django.urls import reverse

        self.user = new_organizer(label)
        self.event = new_event(self.user)
        # A host the settings allow (the test client's default "testserver" is not).
        self.client = Client(HTTP_HOST="localhost")
        self.client.force_login(self.user)
        self.url = reverse("event_invite", args=[self.event.pk])

    def preview(self, text: str):
        response = self.client.post(self.url, {"action": "preview", "guests": text})
        if response.status_code != 200:
            raise RuntimeError(f"preview answered {response.status_code}")
        found = _HIDDEN_GUESTS.search(response.content.decode())
        if not found:
            raise RuntimeError("the preview page has no confirm form")
        return response, html.unescape(found[1])

    def confirm(self, canonical: str):
        response = self.client.post(self.url, {"action": "confirm", "guests": canonical})
        if response.status_code != 302:
            raise RuntimeError(f"confirm answered {response.status_code}, not the redirect")
        return response

    def check(self, count: int) -> str:
        from delivery.models import EmailJob
        from invitations.models import Invitation

        invitations = Invitation.objects.filter(event=self.event)
        jobs = EmailJob.objects.filter(kind="invitation", topic=self.event.topic)
        linked = invitations.filter(email_job__isnull=False).values("email_job").distinct()
        found = (invitations.count(), jobs.count(), linked.count())
        if found != (count, count, count):
            raise AssertionError(
                f"{count} guests: {found[0]} invitations, {found[1]} invitation jobs, "
                f"{found[2]} invitations linked to their own job"
            )
        return f"{count} invitations, {count} jobs, each linked"


@contextlib.contextmanager
def captured_queries():
    """The queries of the requests inside, on this thread's connection. Django empties the query
    log at the start of every request (``request_started`` -> ``reset_queries``), which would
    make CaptureQueriesContext see none: that receiver is off meanwhile. Yields a list, filled
    on the way out (the context's own view reads the log lazily, after later requests reset it).
    """
    from django.core.signals import request_started
    from django.db import connection, reset_queries
    from django.test.utils import CaptureQueriesContext

    queries: list[dict] = []
    request_started.disconnect(reset_queries)
    try:
        with CaptureQueriesContext(connection) as context:
            yield queries
        queries.extend(context.captured_queries)
    finally:
        request_started.connect(reset_queries)


def measure(count: int) -> dict:
    text = pasted(count)
    timed = timed_invitation(count, text)
    preview_peak, peak = invitation_peaks(count, text)
    seconds, queries = timed["seconds"], timed["queries"]
    return {
        "guests": count,
        "seconds": seconds,
        "guests_per_second": count / seconds,
        "queries": len(queries),
        "queries_per_1000_guests": len(queries) * 1000 / count,
        "query_kinds": statement_kinds(queries),
        "sql_seconds": sum(float(q["time"]) for q in queries),
        "batches": math.ceil(count / batch_size()),
        "peak_python_mib": peak / 2**20,
        "rss_growth_mib": (timed["rss_after"] - timed["rss_before"]) / 2**20,
        "max_rss_growth_mib": (timed["max_rss_after"] - timed["max_rss_before"]) / 2**20,
        "rss_after_mib": timed["rss_after"] / 2**20,
        "preview_seconds": timed["preview_seconds"],
        "preview_queries": len(timed["preview_queries"]),
        "preview_peak_python_mib": preview_peak / 2**20,
        "check": timed["check"],
    }


def timed_invitation(count: int, text: str) -> dict:
    """The timed request (queries captured; no tracemalloc): its seconds, queries and the process
    RSS around it, the same for the preview before it, and the check of what it wrote."""
    first_job = next_job_id()
    organizer = Organizer(f"invite{count}")
    gc.collect()
    with captured_queries() as preview_queries:
        started = time.perf_counter()
        _, canonical = organizer.preview(text)
        preview_seconds = time.perf_counter() - started
    gc.collect()
    rss_before, max_rss_before = rss(), max_rss()
    with captured_queries() as queries:
        started = time.perf_counter()
        organizer.confirm(canonical)
        seconds = time.perf_counter() - started
    rss_after, max_rss_after = rss(), max_rss()
    check = organizer.check(count)
    delete_since(organizer.user, first_job)
    return {
        "preview_seconds": preview_seconds,
        "preview_queries": preview_queries,
        "seconds": seconds,
        "queries": queries,
        "rss_before": rss_before,
        "max_rss_before": max_rss_before,
        "rss_after": rss_after,
        "max_rss_after": max_rss_after,
        "check": check,
    }


def invitation_peaks(count: int, text: str) -> tuple[int, int]:
    """The same again into a fresh event, with tracemalloc on: memory only. The peaks of Python
    allocations during the preview and during the confirming request, in bytes."""
    first_job = next_job_id()
    organizer = Organizer(f"invite{count}m")
    gc.collect()
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        _, canonical = organizer.preview(text)
        preview_peak = tracemalloc.get_traced_memory()[1] - baseline
        del _
        gc.collect()
        tracemalloc.reset_peak()
        baseline = tracemalloc.get_traced_memory()[0]
        organizer.confirm(canonical)
        peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
    organizer.check(count)
    delete_since(organizer.user, first_job)
    return preview_peak, peak


def batch_size() -> int:
    from invitations.services.guest_mail import BATCH_SIZE

    return BATCH_SIZE


def fit(rows: list[dict]) -> dict:
    """Least squares of queries on batches; exact when every size lies on the line."""
    points = [(row["batches"], row["queries"]) for row in rows]
    xs = {x for x, _ in points}
    if len(xs) < 2:
        same = len({q for _, q in points}) == 1
        return {
            "constant_apart_from_batches": same,
            "formula": "one batch count only",
            "a": None,
            "b": None,
        }
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    b = sum((x - mean_x) * (y - mean_y) for x, y in points) / sum(
        (x - mean_x) ** 2 for x, _ in points
    )
    a = mean_y - b * mean_x
    residuals = [y - (a + b * x) for x, y in points]
    exact = all(abs(r) < 1e-6 for r in residuals)
    return {
        "constant_apart_from_batches": exact,
        "a": a,
        "b": b,
        "residuals": residuals,
        "formula": f"queries = {a:g} + {b:g} * ceil(N / {batch_size()})"
        + ("" if exact else " (does not fit exactly)"),
    }


def run(sizes: tuple[int, ...] = SIZES) -> dict:
    from django.conf import settings

    # Django warns once, on the first request, that STATIC_ROOT was never collected: harmless.
    warnings.filterwarnings("ignore", message="No directory at", module="django.core.handlers")
    sizes = tuple(sorted(sizes))
    limit = settings.GPMAS_GUEST_LIST_MAX_LINES
    if max(sizes) > limit:
        raise ValueError(f"{max(sizes)} guests is above GPMAS_GUEST_LIST_MAX_LINES ({limit})")
    rows = []
    for count in sizes:
        row = measure(count)
        rows.append(row)
        print(
            f"  {count:>6} guests: {row['seconds']:6.2f} s, {row['queries']:>3} queries "
            f"({row['batches']} batch{'es' if row['batches'] != 1 else ''}), "
            f"peak {row['peak_python_mib']:6.1f} MiB Python, RSS +{row['rss_growth_mib']:.1f} "
            f"MiB; preview {row['preview_seconds']:.2f} s, {row['preview_queries']} queries; "
            f"{row['check']}",
            flush=True,
        )
    shape = fit(rows)
    print(f"  {shape['formula']}", flush=True)
    return {"batch_size": batch_size(), "sizes": rows, "query_shape": shape}

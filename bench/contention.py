"""Benchmark 3, contention: N simultaneous accepts against an event with C seats.

An event with capacity C invites N guests through the service; each guest's raw token is read
from its invitation email, as the guest would. Then all N accepts (``invitation_accept(token,
party_size=1)``, the service the guest's POST calls) are let loose at once: worker processes
(spawned, each with Django set up and its own threads), every thread on its own database
connection, all released together by one barrier, each thread answering its share of the guests
one after another. The concurrency is bounded by the database connections the server has free,
as a connection pool would bound it (the same sizing as tests/invitations/test_concurrency.py).
Before the barrier every process has already answered one warm-up invitation of another event
(imports, templates, connections), so the clock sees only the accepts.

The clock runs from the first accept's start to the last accept's end (``perf_counter`` is the
system-wide monotonic clock on Linux, comparable across processes). Checked afterwards:
exactly C accepted and N - C waitlisted, the seat counter and the recount equal C, every
invitation answered exactly once (response_version 1), one answer email per guest
(confirmation or waitlist) and a reminder per accepted guest, the waitlist positions told to
the guests.

Baselines, with the same machinery:

- sequential, same mix: the same N accepts of an identical event (capacity C), one after another
  on one connection: the same work (C accepts, N - C waitlistings) without any contention;
- sequential, all accepted: as above with unlimited capacity (N plain accepts);
- parallel, no contention: the same concurrency, each thread on an event of its own (unlimited
  capacity), so the row lock is never contended: what the machine does in parallel.
"""

from __future__ import annotations

import math
import multiprocessing
import queue
import threading
import time
from collections import Counter

from bench.bulk_invite import delete_since, new_event, new_organizer, next_job_id

BARRIER_TIMEOUT = 120


# --- Guests and their tokens ------------------------------------------------------------------
def guests(count: int, tag: str) -> list:
    from invitations.guestlist import Guest

    return [Guest(email=f"{tag}{i}@example.com", name=f"Guest {tag}{i}") for i in range(count)]


def tokens_of(event) -> list[str]:
    """Raw tokens, read from the invitation emails (the database keeps only their hashes)."""
    from invitations.models import Invitation
    from tests.events.factories import TOKEN_IN_LINK

    bodies = Invitation.objects.filter(event=event).order_by("id")
    return [
        TOKEN_IN_LINK.search(body)[1]
        for body in bodies.values_list("email_job__text_body", flat=True)
    ]


# --- Firing -------------------------------------------------------------------------------------
def answer(token: str) -> tuple[str, int]:
    """(outcome, waitlist position told to the guest); refusals and errors as outcomes."""
    from invitations.errors import InvitationError
    from invitations.services import invitation_accept
    from reliability.locks import LockBusy

    try:
        result = invitation_accept(token=token, party_size=1)
    except LockBusy:
        return "busy", 0
    except InvitationError as exc:
        return f"refused {exc.status} {exc.reason}", 0
    except Exception as exc:  # counted and shown; never expected
        return f"error {type(exc).__name__}: {exc}"[:300], 0
    return result.outcome, result.waitlist_position


def fire_threads(shares: list[list[str]], barrier) -> list[tuple]:
    """One thread per share, each on its own connection, released together by ``barrier``;
    each answers its share in order. Records (token, outcome, position, started, ended)."""
    records: list[tuple] = []
    lock = threading.Lock()

    def work(share: list[str]) -> None:
        from django.db import connection

        from reliability import redis as project_redis

        mine = []
        try:
            connection.ensure_connection()
            project_redis.client().ping()
            barrier.wait(timeout=BARRIER_TIMEOUT)
            for token in share:
                started = time.perf_counter()
                outcome, position = answer(token)
                mine.append((token, outcome, position, started, time.perf_counter()))
        except Exception as exc:  # a broken barrier or connection: every unanswered token
            done = {record[0] for record in mine}
            now = time.perf_counter()
            mine += [
                (t, f"error {type(exc).__name__}", 0, now, now) for t in share if t not in done
            ]
        finally:
            connection.close()
        with lock:
            records.extend(mine)

    threads = [threading.Thread(target=work, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return records


def _child(shares: list[list[str]], warmup: str, barrier, results) -> None:
    """A worker process: Django set up, one warm-up accept, then its threads at the barrier."""
    import django

    django.setup()
    from django.db import connection

    answer(warmup)
    connection.close()
    results.put(fire_threads(shares, barrier))


def fire(shares: list[list[str]], *, processes: int, warmups: list[str]) -> list[tuple]:
    """Every share at once: in ``processes`` spawned processes (0: threads in this one)."""
    if processes == 0:
        return fire_threads(shares, threading.Barrier(len(shares)))
    context = multiprocessing.get_context("spawn")  # no inherited connections
    barrier = context.Barrier(len(shares))
    results = context.Queue()
    children = [
        context.Process(target=_child, args=(shares[n::processes], warmups[n], barrier, results))
        for n in range(processes)
    ]
    for child in children:
        child.start()
    records: list[tuple] = []
    reported = 0
    deadline = time.monotonic() + BARRIER_TIMEOUT + 600
    try:
        while reported < len(children):
            try:
                records += results.get(timeout=1)
                reported += 1
            except queue.Empty:
                failed = [c.exitcode for c in children if c.exitcode not in (None, 0)]
                if failed or time.monotonic() > deadline:
                    raise RuntimeError(f"a worker process failed (exit codes {failed})") from None
    finally:
        for child in children:
            child.join(timeout=30)
            if child.is_alive():
                child.terminate()
    return records


def deal(tokens: list[str], count: int) -> list[list[str]]:
    """``count`` shares, round robin."""
    return [share for share in (tokens[i::count] for i in range(count)) if share]


# --- Figures and checks -----------------------------------------------------------------------
def summary(records: list[tuple]) -> dict:
    outcomes = Counter(record[1] for record in records)
    started = min(record[3] for record in records)
    seconds = max(record[4] for record in records) - started
    latencies = sorted(record[4] - record[3] for record in records)

    def percentile(p: float) -> float:
        return latencies[min(len(latencies) - 1, math.ceil(p / 100 * len(latencies)) - 1)] * 1000

    errors = {k: v for k, v in outcomes.items() if k not in ("accepted", "waitlisted")}
    return {
        "accepts": len(records),
        "seconds": seconds,
        "accepts_per_second": len(records) / seconds,
        "outcomes": dict(outcomes),
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "latency_ms": {"p50": percentile(50), "p99": percentile(99), "max": latencies[-1] * 1000},
    }


def invariants(event, records: list[tuple], *, capacity: int | None) -> dict:
    from django.conf import settings

    from delivery.models import EmailJob
    from events.models import Event
    from invitations.models import Invitation
    from invitations.services import seats_recount
    from invitations.tokens import token_hash

    invitations = Invitation.objects.filter(event=event)
    total = invitations.count()
    expect_accepted = total if capacity is None else min(capacity, total)
    rsvps = Counter(invitations.values_list("rsvp", flat=True))
    counter = Event.objects.get(pk=event.pk).seats_taken
    recount = seats_recount(event)
    versions = Counter(invitations.values_list("response_version", flat=True))
    jobs = EmailJob.objects.filter(topic=event.topic)
    kinds = Counter(jobs.values_list("kind", flat=True))
    answer_jobs = jobs.filter(kind__in=["confirmation", "waitlist"])
    per_guest = Counter(answer_jobs.values_list("to_email", flat=True))
    linked = invitations.filter(answer_job__kind__in=["confirmation", "waitlist"]).count()
    # The waitlist positions the guests were told, against the final order of the waitlist.
    told = {record[0]: record[2] for record in records if record[1] == "waitlisted"}
    told_positions = Counter(told.values())
    pk_of = dict(invitations.values_list("token_hash", "pk"))
    told_by_pk = {pk_of[token_hash(token)]: position for token, position in told.items()}
    waitlist = invitations.filter(rsvp="waitlisted").order_by("waitlisted_at", "id")
    final = enumerate(waitlist.values_list("pk", flat=True), start=1)
    wrong = sum(1 for n, pk in final if told_by_pk.get(pk) != n)
    checks = {
        "accepted_seats": recount,
        "seat_counter": counter,
        "rsvps": dict(rsvps),
        "response_versions": {str(k): v for k, v in versions.items()},
        "email_jobs": dict(kinds),
        "guests_with_one_answer_email": sum(1 for n in per_guest.values() if n == 1),
        "guests_with_several_answer_emails": sum(1 for n in per_guest.values() if n > 1),
        "invitations_linked_to_their_answer_email": linked,
        "waitlist_positions_told_distinct": len(told_positions),
        "waitlist_positions_told_twice_or_more": sum(1 for n in told_positions.values() if n > 1),
        "waitlist_positions_told_differing_from_final_order": wrong,
    }
    checks["ok"] = (
        recount == counter == expect_accepted
        and rsvps == Counter(accepted=expect_accepted, waitlisted=total - expect_accepted)
        and set(versions) == {1}
        and len(per_guest) == total
        and checks["guests_with_several_answer_emails"] == 0
        and linked == total
        and kinds["confirmation"] == expect_accepted
        and kinds["waitlist"] == total - expect_accepted
        # Reminders a day ahead of an event ten days away: one per accepted guest.
        and kinds["reminder"] == (expect_accepted if settings.GPMAS_REMINDER_OFFSET_SECONDS else 0)
    )
    return checks


def describe(name: str, result: dict) -> None:
    outcomes = ", ".join(f"{n} {k}" for k, n in sorted(result["outcomes"].items()))
    latency = result["latency_ms"]
    print(
        f"  {name:<28} {result['accepts_per_second']:7.1f} accepts/s  "
        f"({result['seconds']:.2f} s; {outcomes}; latency p50 {latency['p50']:.0f} ms, "
        f"p99 {latency['p99']:.0f} ms){'' if result['ok'] else '  CHECK FAILED'}",
        flush=True,
    )
    checks = result.get("checks", {})
    if checks.get("waitlist_positions_told_differing_from_final_order"):
        print(
            f"    waitlist positions told: "
            f"{checks['waitlist_positions_told_differing_from_final_order']} differ from the "
            f"final order, {checks['waitlist_positions_told_twice_or_more']} told to more than "
            f"one guest",
            flush=True,
        )


# --- The benchmark ----------------------------------------------------------------------------
def run(
    guests_count: int = 500,
    capacity: int = 100,
    processes: int = 4,
    concurrency: int | None = None,
) -> dict:
    """``processes=0`` fires from threads of this process instead (as the tests do)."""
    first_job = next_job_id()
    organizer = new_organizer("contention")
    from tests.processes import database_slots

    concurrency = min(concurrency or database_slots(), guests_count)
    processes = min(processes, concurrency)
    results: dict = {
        "guests": guests_count,
        "capacity": capacity,
        "concurrency": concurrency,
        "processes": processes,
    }
    where = f"{processes} processes" if processes else "threads of this process"
    print(
        f"  {guests_count} accepts, capacity {capacity}, {concurrency} connections at once "
        f"({where})",
        flush=True,
    )

    def fire_at(shares: list[list[str]]) -> list[tuple]:
        warmups = new_event_tokens(organizer, processes, "warm") if processes else []
        return fire(shares, processes=processes, warmups=warmups)

    def measure(name: str, records: list[tuple], event, cap: int | None) -> dict:
        result = summary(records)
        result["checks"] = invariants(event, records, capacity=cap)
        result["ok"] = result["checks"]["ok"] and result["errors"] == 0
        results[name] = result
        describe(name.replace("_", " "), result)
        return result

    try:
        answer(new_event_tokens(organizer, 1, "warm")[0])  # this process, once
        # Contended: everyone at once on one event.
        event = new_event(organizer, guests=guests(guests_count, "c"), capacity=capacity)
        measure("contended", fire_at(deal(tokens_of(event), concurrency)), event, capacity)
        # Uncontended: one after another.
        for name, cap, tag in (
            ("sequential_same_mix", capacity, "s"),
            ("sequential_all_accepted", None, "u"),
        ):
            event = new_event(organizer, guests=guests(guests_count, tag), capacity=cap)
            measure(name, fire([tokens_of(event)], processes=0, warmups=[]), event, cap)
        # Parallel without contention: an event of its own per connection.
        shares = [
            new_event_tokens(organizer, len(share), f"p{n}-")
            for n, share in enumerate(deal(list(range(guests_count)), concurrency))
        ]
        parallel = summary(fire_at(shares))
        parallel["ok"] = parallel["outcomes"] == {"accepted": guests_count}
        results["parallel_no_contention"] = parallel
        describe("parallel, no contention", parallel)
    finally:
        delete_since(organizer, first_job)

    rate = results["contended"]["accepts_per_second"]
    for name in ("sequential_same_mix", "sequential_all_accepted", "parallel_no_contention"):
        results[f"ratio_to_{name}"] = rate / results[name]["accepts_per_second"]
    results["ok"] = all(
        results[name]["ok"]
        for name in (
            "contended",
            "sequential_same_mix",
            "sequential_all_accepted",
            "parallel_no_contention",
        )
    )
    print(
        f"  contended / uncontended: {results['ratio_to_sequential_same_mix']:.2f} "
        f"(sequential, same mix), {results['ratio_to_sequential_all_accepted']:.2f} "
        f"(sequential, all accepted), {results['ratio_to_parallel_no_contention']:.2f} "
        f"(parallel, no contention)",
        flush=True,
    )
    return results


def new_event_tokens(organizer, count: int, tag: str) -> list[str]:
    """Tokens of a fresh event with ``count`` guests and no capacity limit."""
    return tokens_of(new_event(organizer, guests=guests(count, tag)))

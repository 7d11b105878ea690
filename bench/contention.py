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

import multiprocessing
import queue
import threading
import time

from bench.contention_checks import describe, invariants, summary
from bench.rows import delete_since, new_event, new_organizer, next_job_id

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
    try:
        answer(new_event_tokens(organizer, 1, "warm")[0])  # this process, once
        # Contended: everyone at once on one event.
        event = new_event(organizer, guests=guests(guests_count, "c"), capacity=capacity)
        records = fire_at(organizer, processes, deal(tokens_of(event), concurrency))
        measure(results, "contended", records, event, capacity)
        # Uncontended: one after another.
        for name, cap, tag in (
            ("sequential_same_mix", capacity, "s"),
            ("sequential_all_accepted", None, "u"),
        ):
            event = new_event(organizer, guests=guests(guests_count, tag), capacity=cap)
            records = fire([tokens_of(event)], processes=0, warmups=[])
            measure(results, name, records, event, cap)
        # Parallel without contention: an event of its own per connection.
        parallel_no_contention(results, organizer, guests_count, concurrency, processes)
    finally:
        delete_since(organizer, first_job)
    compare(results)
    return results


def fire_at(organizer, processes: int, shares: list[list[str]]) -> list[tuple]:
    """Every share at once, from ``processes`` processes each warmed up on an event of its own."""
    warmups = new_event_tokens(organizer, processes, "warm") if processes else []
    return fire(shares, processes=processes, warmups=warmups)


def measure(results: dict, name: str, records: list[tuple], event, cap: int | None) -> dict:
    result = summary(records)
    result["checks"] = invariants(event, records, capacity=cap)
    result["ok"] = result["checks"]["ok"] and result["errors"] == 0
    results[name] = result
    describe(name.replace("_", " "), result)
    return result


def parallel_no_contention(
    results: dict, organizer, guests_count: int, concurrency: int, processes: int
) -> None:
    shares = [
        new_event_tokens(organizer, len(share), f"p{n}-")
        for n, share in enumerate(deal(list(range(guests_count)), concurrency))
    ]
    parallel = summary(fire_at(organizer, processes, shares))
    parallel["ok"] = parallel["outcomes"] == {"accepted": guests_count}
    results["parallel_no_contention"] = parallel
    describe("parallel, no contention", parallel)


def compare(results: dict) -> None:
    """The contended rate against each baseline, and whether every part passed its checks."""
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


def new_event_tokens(organizer, count: int, tag: str) -> list[str]:
    """Tokens of a fresh event with ``count`` guests and no capacity limit."""
    return tokens_of(new_event(organizer, guests=guests(count, tag)))

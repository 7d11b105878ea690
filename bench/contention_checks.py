"""Benchmark 3's figures and checks (see bench/contention.py): the rate and latencies of a run
of accepts, the invariants that must hold afterwards, and the line that reports them."""

from __future__ import annotations

import math
from collections import Counter


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
    told_positions, wrong = waitlist_positions_told(invitations, records)
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


def waitlist_positions_told(invitations, records: list[tuple]) -> tuple[Counter, int]:
    """The waitlist positions the guests were told, against the final order of the waitlist:
    each position with how many guests were told it, and the number of places in the final
    waitlist whose guest was told another."""
    from invitations.tokens import token_hash

    told = {record[0]: record[2] for record in records if record[1] == "waitlisted"}
    told_positions = Counter(told.values())
    pk_of = dict(invitations.values_list("token_hash", "pk"))
    told_by_pk = {pk_of[token_hash(token)]: position for token, position in told.items()}
    waitlist = invitations.filter(rsvp="waitlisted").order_by("waitlisted_at", "id")
    final = enumerate(waitlist.values_list("pk", flat=True), start=1)
    wrong = sum(1 for n, pk in final if told_by_pk.get(pk) != n)
    return told_positions, wrong


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

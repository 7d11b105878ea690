"""Fault semantics, without any server."""

from __future__ import annotations

import pytest

from sandbox import Fault, FaultBook
from sandbox.faults import decide


def test_status_alone_fails_every_call_and_error_rate_picks_some() -> None:
    assert decide(Fault(status=503), default_status=500).status == 503
    assert (
        decide(Fault(code="Throttling"), default_status=500, status_for_code=lambda c: 400).status
        == 400
    )
    assert decide(Fault(code="X"), default_status=500).status == 500
    half = Fault(error_rate=0.5, status=429, retry_after=3)
    assert decide(half, default_status=500, rand=lambda: 0.49).status == 429
    assert decide(half, default_status=500, rand=lambda: 0.49).retry_after == 3
    assert decide(half, default_status=500, rand=lambda: 0.5).status is None
    assert decide(Fault(error_rate=1.0), default_status=451).status == 451
    assert not decide(Fault(latency_ms=5), default_status=500).fails
    assert decide(None, default_status=500) == decide(Fault(), default_status=500)


def test_outage_wins_and_hang_is_bounded() -> None:
    verdict = decide(Fault(outage=True, status=500, latency_ms=100), default_status=500)
    assert verdict.outage and verdict.delay == 0 and verdict.status is None
    assert decide(Fault(hang=True, hang_seconds=2.5), default_status=500).hang == 2.5
    with pytest.raises(ValueError, match="hang_seconds"):
        Fault(hang=True, hang_seconds=3600)


def test_from_dict_accepts_json_numbers_and_refuses_unknown_keys() -> None:
    assert Fault.from_dict({"status": 500.0, "error_rate": 1}) == Fault(status=500, error_rate=1)
    with pytest.raises(ValueError, match="unknown fault field"):
        Fault.from_dict({"latency": 5})
    with pytest.raises(ValueError, match="latency_ms"):
        Fault.from_dict({"latency_ms": 1.5})


def test_fault_book() -> None:
    book = FaultBook()
    book.set("ses", Fault(status=500))
    book.set("smtp", Fault(outage=True))
    book.clear("ses")
    assert book.all() == {"smtp": Fault(outage=True)}
    with pytest.raises(ValueError, match="unknown provider"):
        book.set("postmark", Fault())
    book.clear()
    assert book.get("smtp") is None

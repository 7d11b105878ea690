"""``/healthz``: can sending proceed? 200 if so, 503 with the reasons if not
(docs/architecture.md, "Health").

Anyone gets the status and the HTTP code; the detail (checks, workers' host names, queue,
providers' quotas) needs a staff session or ``Authorization: Bearer <token>`` with a token from
``GPMAS_HEALTH_TOKEN``. A wrong token gets 401.
"""

from __future__ import annotations

import hmac

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from delivery import selectors
from gpmas import system, workers
from gpmas.celery import app as celery_app
from reliability import halt
from reliability import redis as project_redis

LATENCY_MINUTES = 5  # the window of the latency percentiles


def check_database() -> str:
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception as exc:  # any driver error means the same thing here
        connection.close_if_unusable_or_obsolete()
        return f"unavailable: {type(exc).__name__}"


def check_redis() -> str:
    try:
        project_redis.client().ping()
        return "ok"
    except redis.RedisError as exc:
        return f"unavailable: {type(exc).__name__}"


def check_broker() -> str:
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=2)
        return "ok"
    except Exception as exc:  # kombu raises transport-specific errors
        return f"unavailable: {type(exc).__name__}"


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    access = detail_access(request)
    if access is None:
        response = JsonResponse({"status": "unauthorized", "reason": "unknown token"}, status=401)
        response["WWW-Authenticate"] = 'Bearer realm="healthz"'
        return response
    report = health_report()
    code = 200 if report["status"] == "ok" else 503
    return JsonResponse(report if access else {"status": report["status"]}, status=code)


def detail_access(request: HttpRequest) -> bool | None:
    """True: may see the detail; False: the status only; None: presented a wrong token."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        given = token.strip().encode()
        known = [t.encode() for t in settings.GPMAS_HEALTH_TOKENS]
        return True if any(hmac.compare_digest(given, t) for t in known) else None
    try:
        user = request.user
        return bool(user.is_active and user.is_staff)
    except Exception:  # the session is in the database, which may be what is down
        return False


def health_report() -> dict:
    checks = {"database": check_database(), "redis": check_redis(), "broker": check_broker()}
    problems = [f"{name} {state}" for name, state in checks.items() if state != "ok"]
    report: dict = {"checks": checks}
    if checks["redis"] == "ok":
        seen = workers.workers_seen()
        report["workers"] = seen
        if not seen:
            problems.append(f"no worker seen in the last {workers.SEEN_FOR_SECONDS}s")
    if checks["database"] == "ok":
        control = halt.current()
        report["halted"] = control.halted
        report["queue"] = selectors.queue_depth()
        report["oldest_due_age_seconds"] = selectors.oldest_due_age_seconds()
        health = _provider_health() if checks["redis"] == "ok" else None
        if health is not None:
            latency = selectors.latencies(minutes=LATENCY_MINUTES)
            report["providers"] = [
                provider_json(item, latency.get(item.provider.pk)) for item in health
            ]
        state = (
            system.system_state(health, staff=True)
            if health is not None or control.halted
            else None
        )
        if state is not None:
            report["system"] = {"state": state.code, "message": state.message}
            if state.code in (system.HALTED, system.NO_PROVIDER):
                problems.append(state.message)
    report["status"] = "ok" if not problems else "unavailable"
    report["reasons"] = problems
    return report


def provider_json(item: selectors.ProviderHealth, latency: selectors.Latency | None) -> dict:
    return {
        "name": item.provider.name,
        "kind": item.provider.kind,
        "state": item.state,
        "failing": item.availability.failing,
        "penalty": round(item.view.penalty, 1),
        "quota": item.quota,
        "in_flight": item.view.in_flight,
        "latency_ms": (
            {"p50": round(latency.p50_ms), "p95": round(latency.p95_ms)} if latency else None
        ),
    }


def _provider_health() -> list[selectors.ProviderHealth] | None:
    try:
        return selectors.provider_health()
    except redis.RedisError:
        return None

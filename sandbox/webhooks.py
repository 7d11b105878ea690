"""The sandbox posting delivery events to the site, as the providers' webhooks do
(docs/sandbox.md, "Delivery events").

The emulators hand every accepted copy to ``WebhookPoster.accepted``, which only schedules its
events and returns: one daemon thread builds and posts them when due (``delay`` after the
call, one ``delay`` apart), so an emulator's answer never waits for the site. A post the site
does not take (connection refused, timeout, 5xx, 429) is retried ``RETRIES`` times with growing
pauses, then dropped with a log line; a 4xx refusal is logged and not retried. SMTP posts
nothing: real SMTP relays have no webhooks. Off until ``configure`` names a site.
"""

from __future__ import annotations

import base64
import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import requests

from sandbox.inbox import CapturedMessage
from sandbox.webhook_events import Post, Signing, build, outcomes
from sandbox.webhook_keys import WebhookKeys

log = logging.getLogger(__name__)
RETRIES = 3
BACKOFF_SECONDS = 0.5  # doubled on each retry
TIMEOUT_SECONDS = 5
MAX_PENDING = 10_000
TRANSIENT = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class WebhookTarget:
    url: str  # the site, e.g. http://127.0.0.1:8000
    secret: str  # basic auth "user:password", one of the site's GPMAS_WEBHOOK_SECRETS
    keys: WebhookKeys
    sns_cert_url: str
    delay: float = 1.0


@dataclass(frozen=True)
class Result:
    """What became of one post: the site's status, or 0 when it never answered."""

    provider: str
    kind: str
    recipient: str
    status: int
    attempts: int
    fault: str | None


@dataclass
class _Item:
    provider: str
    message: CapturedMessage
    kind: str
    fault: str | None
    post: Post | None = None
    attempts: int = 0


class WebhookPoster:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._target: WebhookTarget | None = None
        self._heap: list[tuple[float, int, _Item]] = []
        self._order = itertools.count()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._session = requests.Session()
        self._results: deque[Result] = deque(maxlen=1000)

    @property
    def target(self) -> WebhookTarget | None:
        return self._target

    def configure(self, target: WebhookTarget | None) -> None:
        """Post to ``target`` from now on (None: stop posting; events not yet sent are dropped)."""
        with self._cond:
            self._target = target
            if target is None:
                self._heap.clear()
            self._results.clear()
            self._cond.notify_all()

    def accepted(
        self, provider: str, messages: Iterable[CapturedMessage], fault: str | None
    ) -> None:
        """Schedule the events of copies the emulator for ``provider`` accepted; never blocks."""
        with self._cond:
            target = self._target
            if target is None or provider not in ("sendgrid", "mailgun", "ses"):
                return
            now = time.monotonic()
            for message in messages:
                for step, kind in enumerate(outcomes(message.to[0]), start=1):
                    if len(self._heap) >= MAX_PENDING:
                        log.warning("sandbox webhooks: %d events pending; dropped one", MAX_PENDING)
                        return
                    item = _Item(provider, message, kind, fault)
                    self._push(now + target.delay * step, item)
            self._cond.notify_all()

    def _push(self, due: float, item: _Item) -> None:
        heapq.heappush(self._heap, (due, next(self._order), item))

    def recent(self) -> list[Result]:
        """What became of the last posts, oldest first."""
        with self._cond:
            return list(self._results)

    def pending(self) -> int:
        with self._cond:
            return len(self._heap)

    def wait_for(self, predicate: Callable[[list[Result]], bool], timeout: float) -> bool:
        """Block until ``predicate(results)`` holds or ``timeout`` passes (tests)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(list(self._results)):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def start(self) -> None:
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="sandbox-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=TIMEOUT_SECONDS + 1)
            self._thread = None
        self._session.close()

    def _run(self) -> None:
        while True:
            with self._cond:
                item, target = self._next_due()
                if item is None:
                    return
            try:
                self._deliver(item, target)
            except Exception:  # a bug here must not end the thread: log it, go on
                log.exception("sandbox webhooks: posting a %s event failed", item.provider)

    def _next_due(self) -> tuple[_Item | None, WebhookTarget | None]:
        """The next item once it is due (the lock held); None when stopping."""
        while not self._stopping:
            if not self._heap:
                self._cond.wait()
                continue
            due = self._heap[0][0]
            wait = due - time.monotonic()
            if wait > 0:
                self._cond.wait(wait)
                continue
            return heapq.heappop(self._heap)[2], self._target
        return None, None

    def _deliver(self, item: _Item, target: WebhookTarget | None) -> None:
        if target is None:
            return
        if item.post is None:  # built when first due, so its timestamp is fresh
            signing = Signing(target.keys, target.sns_cert_url, item.fault)
            item.post = build(item.provider, item.message, item.kind, signing, time.time())
        item.attempts += 1
        status = self._send(item.post, target)
        if (status == 0 or status in TRANSIENT) and item.attempts <= RETRIES:
            with self._cond:
                self._push(time.monotonic() + BACKOFF_SECONDS * 2 ** (item.attempts - 1), item)
            return
        if status == 0 or status >= 300:
            log.warning(
                "sandbox webhooks: %s %s event for %s: %s after %d attempt(s)%s",
                item.provider,
                item.kind,
                item.post.recipient,
                status or "no answer",
                item.attempts,
                "; dropped" if status == 0 or status in TRANSIENT else "",
            )
        self._record(item, status)
        if item.fault == "duplicate" and 0 < status < 300:
            self._record(item, self._send(item.post, target))  # the same event again

    def _send(self, post: Post, target: WebhookTarget) -> int:
        credentials = base64.b64encode(target.secret.encode()).decode()
        headers = {**post.headers, "Authorization": f"Basic {credentials}"}
        try:
            answer = self._session.post(
                target.url.rstrip("/") + post.path,
                data=post.body,
                headers=headers,
                timeout=TIMEOUT_SECONDS,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            log.info("sandbox webhooks: %s unreachable: %s", target.url, exc)
            return 0
        return answer.status_code

    def _record(self, item: _Item, status: int) -> None:
        assert item.post is not None
        result = Result(
            item.provider, item.kind, item.post.recipient, status, item.attempts, item.fault
        )
        with self._cond:
            self._results.append(result)
            self._cond.notify_all()

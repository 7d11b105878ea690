"""``SandboxClient``: the JSON API of a sandbox running in another process."""

from __future__ import annotations

import time
from typing import Any

import requests

from sandbox.inbox import CapturedMessage


class SandboxError(RuntimeError):
    """The sandbox answered with an error (``status`` and its message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"sandbox answered {status}: {message}")
        self.status = status
        self.message = message


class SandboxClient:
    def __init__(self, http_url: str, *, timeout: float = 5.0) -> None:
        self.http_url = http_url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()
        # The sandbox is always local: never route it through a proxy from the environment.
        self._session.trust_env = False

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._session.request(
            method, f"{self.http_url}{path}", timeout=self.timeout, **kwargs
        )
        if response.status_code >= 400:
            try:
                message = response.json().get("error", response.text)
            except ValueError:
                message = response.text
            raise SandboxError(response.status_code, str(message))
        return response.json()

    def messages(
        self, provider: str | None = None, *, job: str | None = None, to: str | None = None
    ) -> list[CapturedMessage]:
        params = {k: v for k, v in {"provider": provider, "job": job, "to": to}.items() if v}
        return [
            CapturedMessage.from_dict(m) for m in self._call("GET", "/api/messages", params=params)
        ]

    def message(self, message_id: str) -> CapturedMessage:
        return CapturedMessage.from_dict(self._call("GET", f"/api/messages/{message_id}"))

    def stats(self) -> dict[str, dict[str, int]]:
        return self._call("GET", "/api/stats")

    def last_accepted(self) -> dict[str, float]:
        """Per provider, the Unix time of its last accepted call since the last reset."""
        return self._call("GET", "/api/last-accepted")

    def faults(self) -> dict[str, dict[str, Any]]:
        return self._call("GET", "/api/faults")

    def set_fault(self, provider: str, **fault: Any) -> dict[str, Any]:
        return self._call("PUT", f"/api/faults/{provider}", json=fault)["fault"]

    def clear_faults(self, provider: str | None = None) -> None:
        self._call("DELETE", f"/api/faults/{provider}" if provider else "/api/faults")

    def reset(self) -> None:
        self._call("POST", "/api/reset")

    def is_running(self) -> bool:
        try:
            self.stats()
        except (requests.RequestException, SandboxError):
            return False
        return True

    def wait_for_messages(
        self,
        count: int,
        provider: str | None = None,
        *,
        job: str | None = None,
        timeout: float = 10.0,
        interval: float = 0.05,
    ) -> list[CapturedMessage]:
        """Poll until at least ``count`` matching messages are captured; TimeoutError if not."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.messages(provider, job=job)
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"{len(found)} of {count} expected sandbox messages after {timeout:g}s"
                )
            time.sleep(interval)

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> SandboxClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

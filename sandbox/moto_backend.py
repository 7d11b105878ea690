"""The moto server the SES emulator forwards to: moto's threaded server, quiet, failing fast."""

from __future__ import annotations

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.server import ThreadedMotoServer
from werkzeug.serving import make_server


class _QuietMotoHandler(MotoRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class MotoBackend(ThreadedMotoServer):
    """moto's threaded server, quiet, and failing fast when its port is taken.

    (The stock ``start()`` waits forever if binding fails; the overrides below touch moto's
    private ``_server_entry``/``_server``/``_server_ready_event``, checked against moto 5.2.)
    """

    def __init__(self, host: str, port: int) -> None:
        super().__init__(ip_address=host, port=port, verbose=False)
        self._bind_error: BaseException | None = None

    def _server_entry(self) -> None:
        try:
            app = DomainDispatcherApplication(create_backend_app)
            self._server = make_server(
                self._ip_address, self._port, app, True, request_handler=_QuietMotoHandler
            )
        except BaseException as exc:
            self._bind_error = exc
            self._server_ready_event.set()
            return
        self._server_ready_event.set()
        self._server.serve_forever()

    def start(self) -> None:
        super().start()
        if self._bind_error is not None:
            self._thread = None
            raise self._bind_error

    def stop(self) -> None:
        if self._thread is None:
            return
        super().stop()
        if self._server is not None:
            self._server.server_close()
        self._thread = None

    @property
    def port(self) -> int:
        return self.get_host_and_port()[1]

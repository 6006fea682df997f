"""The local DynamoDB-compatible table for `make run` and the tests: a moto server
that answers one request at a time.

moto's transactions are not safe under concurrent requests (it deep-copies table
state that another request thread is changing), while DynamoDB itself applies a
transaction atomically. Serving requests one by one restores that guarantee."""

from __future__ import annotations

import logging
import threading

from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server


class SerialMotoServer(ThreadedMotoServer):
    """ThreadedMotoServer (the server runs in a thread) without a thread per request."""

    def __init__(self, ip_address: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(ip_address=ip_address, port=port, verbose=False)
        logging.getLogger("werkzeug").setLevel(logging.WARNING)

    def _server_entry(self) -> None:
        app = DomainDispatcherApplication(create_backend_app)
        self._server = make_server(
            self._ip_address, self._port, app, threaded=False, request_handler=MotoRequestHandler
        )
        self._server_ready_event.set()
        self._server.serve_forever()

    @property
    def endpoint(self) -> str:
        host, port = self.get_host_and_port()
        return f"http://{host}:{port}"


def serve_forever(ip_address: str, port: int) -> None:
    """Run the server in the foreground (for `make run`)."""
    server = SerialMotoServer(ip_address, port)
    server.start()
    threading.Event().wait()

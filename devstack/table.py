"""The local table server for `make run`, the tests and the benchmarks: a moto server
that answers one request at a time, in a process of its own.

moto's transactions are not safe under concurrent requests (it deep-copies table
state that another request thread is changing), while DynamoDB itself applies a
transaction atomically. Serving requests one by one restores that guarantee.

moto also backs up the whole table, once per action, before every transaction, so
a transaction costs time in proportion to the table's size. With one request at a
time, backing up only the items the transaction touches is enough to roll back."""

from __future__ import annotations

import contextlib
import copy
import logging
import sys
import threading
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import moto.dynamodb.models as dynamodb_models
from moto.dynamodb.exceptions import MockValidationException, TransactionCanceledException
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

from devstack.processes import Server, free_port, listening, start_server
from infra.dynamo import Dynamo, make_client
from infra.schema import table_definition
from shared.settings import Settings


def _touched_items(
    backend: DynamoDBBackend, actions: list[dict[str, Any]]
) -> list[tuple[Any, ...]]:
    """(table, hash, range, copy of the item or None) for every item the actions name."""
    touched = []
    for action in actions:
        _, body = next(iter(action.items()))
        table = backend.tables.get(body.get("TableName"))
        if table is None:
            continue
        key = body.get("Key") or body.get("Item") or {}
        if table.hash_key_attr not in key:
            continue
        hash_value = DynamoType(key[table.hash_key_attr])
        range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
        item = table.get_item(hash_value, range_value)
        touched.append((table, hash_value, range_value, copy.deepcopy(item)))
    return touched


def _restore(touched: list[tuple[Any, ...]]) -> None:
    for table, hash_value, range_value, item in reversed(touched):
        if item is None:
            if table.get_item(hash_value, range_value) is not None:
                table.delete_item(hash_value, range_value)
        elif range_value is not None:
            table.items[hash_value][range_value] = item
        else:
            table.items[hash_value] = item


class _NoTableCopies(types.SimpleNamespace):
    """Stands in for the `copy` module inside moto's backend: tables are not copied."""

    @staticmethod
    def deepcopy(value: Any, memo: Any = None) -> Any:
        return value if isinstance(value, Table) else copy.deepcopy(value, memo)


def _transact_touching_only(original: Callable[..., None]) -> Callable[..., None]:
    def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
        touched = _touched_items(self, transact_items)
        try:
            original(self, transact_items)
        except (TransactionCanceledException, MockValidationException):
            _restore(touched)
            raise

    return transact_write_items


def _install_item_backups() -> None:
    if getattr(DynamoDBBackend, "_corral_item_backups", False):
        return
    dynamodb_models.copy = _NoTableCopies()  # type: ignore[attr-defined,assignment]
    DynamoDBBackend.transact_write_items = _transact_touching_only(  # type: ignore[method-assign]
        DynamoDBBackend.transact_write_items
    )
    DynamoDBBackend._corral_item_backups = True  # type: ignore[attr-defined]


class SerialMotoServer(ThreadedMotoServer):
    """ThreadedMotoServer (the server runs in a thread) without a thread per request."""

    def __init__(self, ip_address: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(ip_address=ip_address, port=port, verbose=False)
        _install_item_backups()
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
    """Run the server in the foreground (the child process of `start_table_server`)."""
    server = SerialMotoServer(ip_address, port)
    server.start()
    threading.Event().wait()


def start_table_server(env: dict[str, str], log_path: Path) -> Server:
    """Start the table server on a free port and wait until it listens."""
    port = free_port()
    command = [sys.executable, "-m", "devstack.table", str(port)]
    url = f"http://127.0.0.1:{port}"
    return start_server("table server (moto)", command, env, log_path, url, lambda: listening(port))


def create_table(settings: Settings) -> Dynamo:
    """Create Corral's table (infra.schema) on the settings' endpoint."""
    client = make_client(settings)
    client.create_table(**table_definition(settings.table_name))
    client.get_waiter("table_exists").wait(TableName=settings.table_name)
    return Dynamo(client, settings.table_name)


@contextlib.contextmanager
def fresh_table(settings: Settings) -> Iterator[Dynamo]:
    """A new table for the block, deleted after it."""
    dynamo = create_table(settings)
    try:
        yield dynamo
    finally:
        dynamo.client.delete_table(TableName=settings.table_name)


if __name__ == "__main__":
    serve_forever("127.0.0.1", int(sys.argv[1]))

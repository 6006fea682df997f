"""HTTP to Corral's API: JSON in and out, the error envelope turned into CliError
with the exit code the CLI documents."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from cli.config import Config

IDEMPOTENCY_HEADER = "Idempotency-Key"
# Sends of a write with an Idempotency-Key when the connection fails.
TRANSPORT_ATTEMPTS = 3
PUBLIC = "/api/public/clusters/v1"
ADMIN = "/api/v1"

# Exit codes (README, "The corral command line").
OK = 0
CLIENT_ERROR = 1  # the API answered 4xx, or the command was used wrongly
SERVER_ERROR = 2  # the API answered 5xx, or could not be reached
OPERATION_FAILED = 3  # the change was accepted, and its operation failed


class CliError(Exception):
    def __init__(self, message: str, exit_code: int, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.code = code


@dataclass(frozen=True)
class Event:
    """One server-sent event of a log follow."""

    kind: str  # "message", "error" or "end" (an event log's: the event's type)
    data: Any
    id: str | None = None  # its `id:` (an event log's cursor)


class Client:
    def __init__(self, config: Config, operator: bool = False, timeout: float = 30.0) -> None:
        key = config.operator_key if operator else config.key
        if not key:
            which = "CORRAL_OPERATOR_KEY" if operator else "CORRAL_KEY"
            raise CliError(
                f"No {'operator' if operator else 'API'} key: set {which} "
                "or run `make run`, which writes .corral/local.json.",
                CLIENT_ERROR,
            )
        self._config = config
        self._base = config.url + (ADMIN if operator else PUBLIC)
        self._http = httpx.Client(
            headers={"Authorization": f"Bearer {key}"}, timeout=timeout, follow_redirects=False
        )

    def close(self) -> None:
        self._http.close()

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: dict[str, Any] | None = None,
        timeout: float | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        """The answer's JSON (None for 204). A write with an `idempotency_key` is sent
        again when the connection fails (the answer may have been lost): Corral acts
        once and answers the retry with the first answer."""
        headers = {IDEMPOTENCY_HEADER: idempotency_key} if idempotency_key else {}
        attempts = TRANSPORT_ATTEMPTS if idempotency_key else 1
        for attempt in range(attempts):
            try:
                response = self._http.request(
                    method,
                    self._base + path,
                    json=body,
                    params=params,
                    headers=headers,
                    timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
                )
                break
            except httpx.TransportError as exc:
                if attempt == attempts - 1:
                    raise self._unreachable(exc) from exc
            except httpx.HTTPError as exc:
                raise self._unreachable(exc) from exc
        if response.status_code >= 400:
            raise error_of(response.status_code, response.content)
        return response.json() if response.content else None

    def events(
        self, path: str, params: dict[str, Any], last_event_id: str | None = None
    ) -> Iterator[Event]:
        """Server-sent events of a streaming route, as they come (resuming after
        `last_event_id`)."""
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        try:
            with self._http.stream(
                "GET", self._base + path, params=params, headers=headers, timeout=None
            ) as resp:
                if resp.status_code >= 400:
                    raise error_of(resp.status_code, resp.read())
                kind, data, event_id = "message", [], None
                for line in resp.iter_lines():
                    if line.startswith("event:"):
                        kind = line[6:].strip()
                    elif line.startswith("id:"):
                        event_id = line[3:].strip()
                    elif line.startswith("data:"):
                        data.append(line[5:].strip())
                    elif not line and data:
                        yield Event(kind, json.loads("\n".join(data)), event_id)
                        kind, data, event_id = "message", [], None
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc

    def _unreachable(self, exc: httpx.HTTPError) -> CliError:
        return CliError(
            f"Corral at {self._config.url} did not answer ({exc.__class__.__name__}: {exc}).",
            SERVER_ERROR,
        )


def error_of(status: int, content: bytes) -> CliError:
    """The envelope's code and message; the status when the body is not an envelope."""
    exit_code = CLIENT_ERROR if status < 500 else SERVER_ERROR
    try:
        error = json.loads(content)["error"]
        return CliError(str(error["message"]), exit_code, str(error["code"]))
    except (ValueError, KeyError, TypeError):
        return CliError(f"HTTP {status}: {content[:200].decode(errors='replace')}", exit_code)

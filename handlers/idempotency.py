"""`Idempotency-Key` on every POST, PATCH and DELETE of a key-holding route.

A first request with a key claims the key's record in the same transaction as its own
write (infra/table/idempotency.py) and stores its answer once it is known; a repeat
with the same key and body answers that answer (with `Idempotent-Replayed: true`)
without running again, waiting for it while the first is still being answered; the
same key with another method, path or body answers 409 `idempotency_key_reused`.
Keys are scoped to the API key that sent them and kept 24 hours.

A request that lost the race (its transaction failed on the claim, or it failed for
any reason while another request with the key had committed) answers the winner's
answer too: whatever the interleaving, one request acts and all answer alike."""

from __future__ import annotations

import contextvars
import hashlib
import io
import logging
import time
from dataclasses import dataclass
from typing import Any

import falcon

from handlers import errors
from infra.table.idempotency import Claim, IdempotencyStore, Record, alight, ride
from services.deps import Deps
from shared.errors import Conflict, CorralError, IdempotencyKeyReused, InvalidInput

log = logging.getLogger("corral.idempotency")

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
WRITE_METHODS = frozenset({"POST", "PATCH", "DELETE"})
MAX_KEY_LENGTH = 255
POLL_SECONDS = 0.05


@dataclass
class _Pending:
    """What a request with an Idempotency-Key carries from process_resource on."""

    key_id: str
    idempotency_key: str
    fingerprint: str
    claim: Claim
    token: contextvars.Token[Claim | None]


def idempotency_key_of(req: falcon.Request) -> str | None:
    value = req.get_header(HEADER)
    if value is None:
        return None
    if not (0 < len(value) <= MAX_KEY_LENGTH and value.isascii() and value.isprintable()):
        raise InvalidInput(f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters.")
    return value


class IdempotencyMiddleware:
    """After AuthMiddleware: keys are scoped to `req.context.principal`."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._store = IdempotencyStore(deps.repo.db)

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, params: Any
    ) -> None:
        principal = req.context.get("principal")
        if req.method not in WRITE_METHODS or principal is None:
            return
        idempotency_key = idempotency_key_of(req)
        if idempotency_key is None:
            return
        fingerprint = self._fingerprint(req)
        found = self._store.find(principal.key_id, idempotency_key)
        if found is not None:
            self._answer(resp, self._settled(found, principal.key_id, idempotency_key, fingerprint))
            return
        claim = self._store.claim(
            principal.key_id, idempotency_key, fingerprint, self._deps.clock()
        )
        req.context.idempotency = _Pending(
            principal.key_id, idempotency_key, fingerprint, claim, ride(claim)
        )

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool
    ) -> None:
        pending: _Pending | None = req.context.get("idempotency")
        if pending is None:
            return
        req.context.idempotency = None
        alight(pending.token)
        if not pending.claim.written and resp.status_code >= 400:
            # Nothing of this request was written. When another request with the key
            # won meanwhile, its answer is this one's too.
            found = self._store.find(pending.key_id, pending.idempotency_key)
            if found is not None:
                resp.media = None
                try:
                    settled = self._settled(
                        found, pending.key_id, pending.idempotency_key, pending.fingerprint
                    )
                except CorralError as error:
                    errors.send(resp, error)
                    return
                self._answer(resp, settled)
            return
        if resp.stream is not None:
            return  # a streamed answer is not stored (no write route streams)
        body = resp.render_body() or b""
        try:
            self._store.complete(
                pending.key_id,
                pending.idempotency_key,
                pending.fingerprint,
                (resp.status_code, body, resp.content_type if body else None),
                self._deps.clock(),
            )
        except Exception:
            # The write happened and the caller gets its answer; a retry then waits for
            # the record to complete and answers 409 conflict when it never does.
            log.exception("could not store the answer for an idempotency key")

    def _fingerprint(self, req: falcon.Request) -> str:
        """What makes a repeat the same request: method, path and body. The body is
        read here (up to the size the routes accept) and put back for the responder."""
        digest = hashlib.sha256(f"{req.method} {req.path}\n".encode())
        length = req.content_length or 0
        if 0 < length <= self._deps.settings.max_body_bytes:
            raw = req.bounded_stream.read()
            req.env["wsgi.input"] = req.stream = io.BytesIO(raw)
            req._bounded_stream = None  # falcon wraps wsgi.input again on the next read
            digest.update(raw)
        return digest.hexdigest()

    def _settled(
        self, found: Record, key_id: str, idempotency_key: str, fingerprint: str
    ) -> Record:
        """The first request's answer, waited for while it is being answered."""
        deadline = time.monotonic() + self._deps.settings.idempotency_wait_seconds
        while True:
            if found.fingerprint != fingerprint:
                raise IdempotencyKeyReused()
            if found.done:
                return found
            if time.monotonic() >= deadline:
                raise Conflict(
                    f"A request with this {HEADER} is still being answered; retry shortly."
                )
            time.sleep(POLL_SECONDS)
            found = self._store.find(key_id, idempotency_key) or found

    @staticmethod
    def _answer(resp: falcon.Response, record: Record) -> None:
        resp.status = record.status or 200
        resp.data = record.body or None
        if record.content_type:
            resp.content_type = record.content_type
        resp.set_header(REPLAYED_HEADER, "true")
        resp.complete = True

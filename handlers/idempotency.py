"""`Idempotency-Key` on every POST, PATCH and DELETE of a key-holding route.

A first request with a key claims the key's record in the same transaction as its own
write (infra/table/idempotency.py) and stores its answer once it is known; a repeat
with the same key and body answers that answer (with `Idempotent-Replayed: true`)
without running again, waiting for it while the first is still being answered; the
same key with another method, path or body answers 409 `idempotency_key_reused`.
Keys are scoped to the API key that sent them and kept 24 hours.

A request that lost the race (its transaction failed on the claim, or it failed for
any reason while another request with the key had committed) answers the winner's
answer too: whatever the interleaving, one request acts and all answer alike.

A pending record exists only if its write committed. When the request that claimed it
died before storing its answer (a worker killed, a Lambda timed out), a retry that
finds the record pending for longer than `idempotency_lease_seconds` (longer than any
request lives) rebuilds the answer from the items the claim names
(handlers/lost_answers.py) and stores it: the same status and operation, at once.

An answer that can show a once-shown secret (a new key, a webhook's signing secret, a
database password: handlers/declare.py `shows_secret`) is stored sealed under
CORRAL_SECRET_KEY, and opened only to replay it; with no such key set, its body is not
kept and a repeat answers 409 conflict saying the request was carried out. No secret
lies in the table in the clear.

Round trips a request with a key adds: the record's read, and storing the answer (the
claim rides in the request's own first transaction). A request without one: none."""

from __future__ import annotations

import contextvars
import hashlib
import io
import logging
import time
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import falcon

from handlers import errors
from handlers.declare import declaration_of, responder_of, shows_secret
from infra.table.idempotency import DONE, Claim, IdempotencyStore, Record, alight, ride
from services.deps import Deps
from shared.errors import Conflict, CorralError, IdempotencyKeyReused, InvalidInput
from shared.sealing import SealingError, seal, unseal

log = logging.getLogger("corral.idempotency")

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
WRITE_METHODS = frozenset({"POST", "PATCH", "DELETE"})
MAX_KEY_LENGTH = 255
POLL_SECONDS = 0.05


@dataclass(frozen=True)
class _Keyed:
    """A write request with an Idempotency-Key: whose, which, and what it asks."""

    key_id: str
    idempotency_key: str
    fingerprint: str
    resource: Any
    method: str


@dataclass
class _Pending:
    """What a request with an Idempotency-Key carries from process_resource on."""

    request: _Keyed
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
        keyed = _Keyed(
            principal.key_id, idempotency_key, self._fingerprint(req), resource, req.method
        )
        found = self._store.find(keyed.key_id, keyed.idempotency_key)
        if found is not None:
            self._answer(resp, self._settled(found, keyed))
            return
        claim = self._store.claim(
            keyed.key_id, keyed.idempotency_key, keyed.fingerprint, self._deps.clock()
        )
        req.context.idempotency = _Pending(keyed, claim, ride(claim))

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool
    ) -> None:
        pending: _Pending | None = req.context.get("idempotency")
        if pending is None:
            return
        req.context.idempotency = None
        alight(pending.token)
        keyed = pending.request
        if not pending.claim.written and resp.status_code >= 400:
            # Nothing of this request was written. When another request with the key
            # won meanwhile, its answer is this one's too.
            found = self._store.find(keyed.key_id, keyed.idempotency_key)
            if found is not None:
                resp.media = None
                try:
                    settled = self._settled(found, keyed)
                except CorralError as error:
                    errors.send(resp, error)
                    return
                self._answer(resp, settled)
            return
        if resp.stream is not None:
            return  # a streamed answer is not stored (no write route streams)
        body: bytes | None = resp.render_body() or b""
        content_type = resp.content_type if body else None
        sealed = shows_secret(declaration_of(responder_of(keyed.resource, keyed.method)))
        if sealed and body:
            secret_key = self._deps.settings.secret_key
            body = seal(secret_key, body.decode()).encode() if secret_key else None
        try:
            self._store.complete(
                keyed.key_id,
                keyed.idempotency_key,
                keyed.fingerprint,
                (resp.status_code, body, content_type),
                self._deps.clock(),
                sealed=sealed,
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

    def _settled(self, found: Record, keyed: _Keyed) -> Record:
        """The first request's answer, waited for while it is being answered, and
        rebuilt when its request died before storing it."""
        settings = self._deps.settings
        deadline = time.monotonic() + settings.idempotency_wait_seconds
        while True:
            if found.fingerprint != keyed.fingerprint:
                raise IdempotencyKeyReused()
            if found.done:
                return self._opened(found)
            now = self._deps.clock()
            if found.created_at is not None and (
                (now - found.created_at).total_seconds() > settings.idempotency_lease_seconds
            ):
                return self._rebuilt(found, keyed, now)
            if time.monotonic() >= deadline:
                raise Conflict(
                    f"A request with this {HEADER} is still being answered; retry shortly."
                )
            time.sleep(POLL_SECONDS)
            found = self._store.find(keyed.key_id, keyed.idempotency_key) or found

    def _rebuilt(self, found: Record, keyed: _Keyed, now: datetime) -> Record:
        """The answer of a request that died after its commit, stored for the next retry."""
        from handlers.lost_answers import rebuild  # views and shapes: only when needed

        declaration = declaration_of(responder_of(keyed.resource, keyed.method))
        status, body = rebuild(self._deps.repo.db, declaration, found.wrote, now)
        content_type = falcon.MEDIA_JSON if body else None
        log.warning("rebuilt the lost answer of an idempotency key's request (status %s)", status)
        answer = (status, body, content_type)
        self._store.complete(keyed.key_id, keyed.idempotency_key, keyed.fingerprint, answer, now)
        return Record(found.fingerprint, DONE, found.created_at, status, body, content_type)

    def _opened(self, found: Record) -> Record:
        """A stored answer as it was sent: a sealed body opened."""
        from handlers.lost_answers import AnswerLost

        if not found.sealed or found.body == b"":
            return found
        secret_key = self._deps.settings.secret_key
        if found.body is None or secret_key is None:
            raise AnswerLost()  # withheld: there was no key to seal it with
        try:
            body = unseal(secret_key, found.body.decode()).encode()
        except SealingError as error:
            raise AnswerLost() from error
        return replace(found, body=body, sealed=False)

    @staticmethod
    def _answer(resp: falcon.Response, record: Record) -> None:
        resp.status = record.status or 200
        resp.data = record.body or None
        if record.content_type:
            resp.content_type = record.content_type
        resp.set_header(REPLAYED_HEADER, "true")
        resp.complete = True

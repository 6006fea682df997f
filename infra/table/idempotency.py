"""Idempotency records: the item `IDEM#<api key id>` / `#<sha256 of the Idempotency-Key>`
that makes a retried write answer the first answer.

A record is *claimed* in the same DynamoDB transaction as the write it guards: the
request handling it sets a `Claim` as the request's riding claim (`riding`), and the
first write the table takes during that request (`Dynamo.transact`, or a single write
turned into a transaction) carries the claim's conditional put (`attribute_not_exists`)
as its first entry. Of two racing retries only one transaction can commit; the other's
fails on the claim with `ClaimTaken` and nothing of it is written. The answer is stored
on the record once it is known (`complete`), and the table drops the record after
`RETENTION_SECONDS` (its `ttl`).

The claim also names the items its transaction wrote (`wrote`: their keys), so that
when the process dies between the commit and storing the answer, a retry that finds
the record pending past any request's lifetime rebuilds the answer from them
(handlers/lost_answers.py) instead of waiting on it for a day. It costs no round
trip: the names ride in the claim's own put.

Workers never set a riding claim: only a request with an `Idempotency-Key` does."""

from __future__ import annotations

import contextvars
import hashlib
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

from infra.table import schema
from infra.table.attributes import Item
from infra.table.expression import Expression
from shared.clock import parse_iso, stamp
from shared.errors import CorralError

if TYPE_CHECKING:
    from infra.table.dynamo import Dynamo, TxEntry

RETENTION_SECONDS = 24 * 3600
PENDING = "pending"
DONE = "done"


class ClaimTaken(CorralError):
    """Another request with the same Idempotency-Key committed its write first. Not a
    `Conflict`: the retry loops of the services must not try again past it; the
    middleware answers the winner's answer instead."""

    code, status = "conflict", 409
    default_message = "A request with this Idempotency-Key is being answered; retry."


@dataclass(frozen=True)
class Record:
    fingerprint: str
    state: str
    created_at: datetime | None = None
    status: int | None = None
    body: bytes | None = None
    content_type: str | None = None
    # The (pk, sk) of the items the claiming transaction wrote.
    wrote: tuple[tuple[str, str], ...] = ()
    # The body is sealed under CORRAL_SECRET_KEY (an answer that can show a secret);
    # sealed with no body: it was not kept (no key to seal it with).
    sealed: bool = False

    @property
    def done(self) -> bool:
        return self.state == DONE


@dataclass
class Claim:
    """The record a request will write with its first table write."""

    entry: TxEntry
    written: bool = False

    def naming(self, entries: list[TxEntry]) -> TxEntry:
        """The claim's put, naming the items `entries` write (their keys, as sent)."""
        keys = []
        for entry in entries:
            ((kind, body),) = entry.request.items()
            if kind == "ConditionCheck":
                continue
            key = body["Item"] if kind == "Put" else body["Key"]
            keys.append({"M": {"pk": key["pk"], "sk": key["sk"]}})
        put = dict(self.entry.request["Put"])
        put["Item"] = {**put["Item"], "wrote": {"L": keys}}
        return replace(self.entry, request={"Put": put})


_riding: contextvars.ContextVar[Claim | None] = contextvars.ContextVar(
    "corral_idempotency_claim", default=None
)


def riding() -> Claim | None:
    """The claim the current request's next table write carries, if not written yet."""
    claim = _riding.get()
    return claim if claim is not None and not claim.written else None


def ride(claim: Claim | None) -> contextvars.Token[Claim | None]:
    return _riding.set(claim)


def alight(token: contextvars.Token[Claim | None]) -> None:
    _riding.reset(token)


def record_sk(idempotency_key: str) -> str:
    return "#" + hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()


def _record_from(item: Item) -> Record:
    body = item.get("body")
    return Record(
        fingerprint=item["fingerprint"],
        state=item["state"],
        created_at=parse_iso(item.get("created_at")),
        status=item.get("status"),
        body=bytes(body) if body is not None else None,
        content_type=item.get("content_type"),
        wrote=tuple((k["pk"], k["sk"]) for k in item.get("wrote", [])),
        sealed=bool(item.get("sealed", False)),
    )


class IdempotencyStore:
    def __init__(self, db: Dynamo) -> None:
        self.db = db

    def find(self, key_id: str, idempotency_key: str) -> Record | None:
        item = self.db.get(schema.idempotency_pk(key_id), record_sk(idempotency_key))
        return _record_from(item) if item else None

    def claim(self, key_id: str, idempotency_key: str, fingerprint: str, now: datetime) -> Claim:
        """A pending record, to be written with the request's first write."""
        item: Item = {
            "pk": schema.idempotency_pk(key_id),
            "sk": record_sk(idempotency_key),
            "type": "idempotency",
            "fingerprint": fingerprint,
            "state": PENDING,
            "created_at": stamp(now),
            schema.TTL_ATTRIBUTE: int(now.timestamp()) + RETENTION_SECONDS,
        }
        return Claim(self.db.tx_put(item, Expression().when_absent()))

    def complete(
        self,
        key_id: str,
        idempotency_key: str,
        fingerprint: str,
        answer: tuple[int, bytes | None, str | None],
        now: datetime,
        *,
        sealed: bool = False,
    ) -> None:
        """Store the answer on the record (creating it when the request wrote nothing to
        the table, so there was no transaction to claim it in). `sealed`: the body is
        sealed (or, None, withheld)."""
        status, body, content_type = answer
        write = (
            Expression()
            .set("type", "idempotency")
            .set("fingerprint", fingerprint)
            .set("state", DONE)
            .set("status", status)
            .set("created_at", stamp(now))
            .set(schema.TTL_ATTRIBUTE, int(now.timestamp()) + RETENTION_SECONDS)
        )
        if body is not None:
            write.set("body", body)
        if sealed:
            write.set("sealed", True)
        if content_type:
            write.set("content_type", content_type)
        same = f"{write.name('fingerprint')} = {write.value(fingerprint)}"
        write.when(f"attribute_not_exists({write.name('pk')}) OR {same}")
        self.db.update(schema.idempotency_pk(key_id), record_sk(idempotency_key), write)

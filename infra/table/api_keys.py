"""API keys: the item `KEY#<hash>` / `#META`, found by the hash of the secret a request
carries, and listed on GSI1 under `KEYS#<cluster>` (or `KEYS#OPERATOR`). A cluster key
also holds one of the cluster's key slots (`ClusterStore.take_key_slot`); the
transactions that move both are the repository's."""

from __future__ import annotations

from datetime import datetime

from infra.table import schema
from infra.table.attributes import Item, moment
from infra.table.dynamo import Dynamo, TxEntry
from infra.table.expression import Expression
from shared.clock import iso, parse_iso, stamp
from shared.errors import Conflict, NotFound
from shared.keys import VERBS, KeyScope
from shared.models import ApiKey


def key_item(k: ApiKey) -> Item:
    return {
        "pk": schema.key_pk(k.key_hash),
        "sk": schema.META,
        "gsi1pk": schema.keys_of(k.cluster_id),
        "gsi1sk": k.id,
        "type": "key",
        "id": k.id,
        "cluster_id": k.cluster_id,
        "name": k.name,
        "prefix": k.prefix,
        "key_hash": k.key_hash,
        "created_at": iso(k.created_at),
        "last_used_at": iso(k.last_used_at),
        "revoked": k.revoked,
        "verbs": list(k.scope.verbs),
        "container_ids": _listed(k.scope.container_ids),
        "egg_ids": _listed(k.scope.egg_ids),
        "expires_at": iso(k.scope.expires_at),
    }


def _listed(ids: tuple[str, ...] | None) -> list[str] | None:
    return list(ids) if ids is not None else None


def _ids(value: list[str] | None) -> tuple[str, ...] | None:
    return tuple(value) if value is not None else None


def scope_from(item: Item) -> KeyScope:
    """A key's scope; keys stored before scopes existed are unscoped."""
    return KeyScope(
        verbs=tuple(item.get("verbs") or VERBS),
        container_ids=_ids(item.get("container_ids")),
        egg_ids=_ids(item.get("egg_ids")),
        expires_at=parse_iso(item.get("expires_at")),
    )


def key_from(item: Item) -> ApiKey:
    return ApiKey(
        id=item["id"],
        cluster_id=item.get("cluster_id"),
        name=item["name"],
        prefix=item["prefix"],
        key_hash=item["key_hash"],
        created_at=moment(item["created_at"]),
        last_used_at=parse_iso(item.get("last_used_at")),
        revoked=bool(item.get("revoked", False)),
        scope=scope_from(item),
    )


class AlreadyRevoked(Conflict):
    """The revocation found the key revoked already (by a parallel or earlier call)."""


class ApiKeyStore:
    def __init__(self, db: Dynamo) -> None:
        self.db = db

    def find(self, key_hash: str) -> ApiKey | None:
        # Strongly consistent: a key revoked a moment ago must read as revoked.
        item = self.db.get(schema.key_pk(key_hash), schema.META, consistent=True)
        return key_from(item) if item else None

    def get(self, cluster_id: str, key_id: str) -> ApiKey:
        for item in self.db.query(schema.keys_of(cluster_id), sk_prefix=key_id, index=schema.GSI1):
            if item["id"] == key_id:
                return key_from(item)
        raise NotFound("Key not found.")

    def list(self, cluster_id: str | None) -> list[ApiKey]:
        items = self.db.query(schema.keys_of(cluster_id), index=schema.GSI1)
        return [key_from(i) for i in items]

    def touch(self, key_hash: str, now: datetime) -> None:
        self.db.update(
            schema.key_pk(key_hash),
            schema.META,
            Expression().set("last_used_at", stamp(now)).when_exists(),
            on_fail=lambda _: NotFound("Key not found."),
        )

    # -- transaction entries -----------------------------------------------------

    def put_new(self, key: ApiKey) -> TxEntry:
        return self.db.tx_put(key_item(key), Expression().when_absent())

    def revoke(self, key: ApiKey, now: datetime) -> TxEntry:
        write = Expression().set("revoked", True).set("revoked_at", stamp(now))
        write.when_equal("revoked", False)
        return self.db.tx_update(
            schema.key_pk(key.key_hash),
            schema.META,
            write,
            on_fail=lambda _: AlreadyRevoked("Key is already revoked."),
        )

"""Minting API keys: the secret is returned once and only its hash is stored. A key is
minted within the scope of the key that asks for it, never broader."""

from __future__ import annotations

from datetime import datetime

from infra.table.repository import Repository
from shared.admin_requests import KeyCreate
from shared.clock import IdFactory, new_secret
from shared.errors import Forbidden, InvalidInput
from shared.keys import OPERATOR_PREFIX, TENANT_PREFIX, KeyScope, display_prefix, hash_secret
from shared.models import ApiKey


def scope_for(body: KeyCreate, minter: KeyScope, now: datetime) -> KeyScope:
    """The scope a key asks for, each field left out taken from the minting key's own;
    Forbidden when it would be broader than the minter's."""
    asked = KeyScope(
        verbs=tuple(dict.fromkeys(body.verbs)) if body.verbs is not None else minter.verbs,
        container_ids=(
            tuple(dict.fromkeys(body.container_ids))
            if body.container_ids is not None
            else minter.container_ids
        ),
        egg_ids=tuple(dict.fromkeys(body.egg_ids)) if body.egg_ids is not None else minter.egg_ids,
        expires_at=body.expires_at if body.expires_at is not None else minter.expires_at,
    )
    if asked.expires_at is not None and asked.expires_at <= now:
        raise InvalidInput("expires_at must be in the future.")
    wider = asked.broader_than(minter)
    if wider:
        raise Forbidden(
            "A key cannot mint a key broader than itself: the new key would widen "
            + ", ".join(wider)
            + "."
        )
    return asked


def mint_key(
    repo: Repository,
    cluster_id: str | None,
    name: str,
    now: datetime,
    new_id: IdFactory,
    scope: KeyScope | None = None,
) -> tuple[ApiKey, str]:
    """Create a cluster key (or an operator key when `cluster_id` is None)."""
    secret = new_secret(OPERATOR_PREFIX if cluster_id is None else TENANT_PREFIX)
    key = ApiKey(
        id=new_id(),
        cluster_id=cluster_id,
        name=name,
        prefix=display_prefix(secret),
        key_hash=hash_secret(secret),
        created_at=now,
        scope=scope or KeyScope(),
    )
    repo.create_key(key, now)
    return key, secret

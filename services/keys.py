"""Minting API keys: the secret is returned once and only its hash is stored."""

from __future__ import annotations

from datetime import datetime

from infra.table.repository import Repository
from shared.clock import IdFactory, new_secret
from shared.keys import OPERATOR_PREFIX, TENANT_PREFIX, display_prefix, hash_secret
from shared.models import ApiKey


def mint_key(
    repo: Repository,
    cluster_id: str | None,
    name: str,
    now: datetime,
    new_id: IdFactory,
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
    )
    repo.create_key(key, now)
    return key, secret

"""Moving a workload's expiry, shared by single renewals and environment renewals."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from infra import codec
from shared.clock import stamp
from shared.errors import ActionNotAllowed, NotFound
from shared.models import Workload
from shared.states import WorkloadStatus


def lease_update(workload: Workload, expires_at: datetime, now: datetime) -> dict[str, Any]:
    """The update that moves a workload's expiry (and its place in the expiry index),
    refused once it is being deleted or gone; as keyword arguments of Dynamo.update
    or Dynamo.tx_update."""
    index_keys = codec.expiry_keys(workload.id, expires_at)
    return {
        "expression": "SET expires_at = :exp, gsi2pk = :gsi2pk, gsi2sk = :gsi2sk, "
        "updated_at = :now, version = version + :one",
        "values": {
            ":exp": stamp(expires_at),
            ":gsi2pk": index_keys["gsi2pk"],
            ":gsi2sk": index_keys["gsi2sk"],
            ":now": stamp(now),
            ":one": 1,
            ":deleting": WorkloadStatus.DELETING.value,
            ":deleted": WorkloadStatus.DELETED.value,
            ":expired": WorkloadStatus.EXPIRED.value,
        },
        "names": {"#s": "status"},
        "condition": "attribute_exists(pk) AND NOT (#s IN (:deleting, :deleted, :expired))",
        "on_fail": lambda old: (
            NotFound("Container not found.")
            if old is None
            else ActionNotAllowed(f"Cannot renew the lease of a container that is {old['status']}.")
        ),
    }

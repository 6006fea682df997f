"""The platform's settings: one item, `PLATFORM` / `#SETTINGS`; absent means defaults."""

from __future__ import annotations

from datetime import datetime

from infra.table import schema
from infra.table.dynamo import Dynamo
from infra.table.expression import Expression
from shared.changes import record_change
from shared.clock import iso, parse_iso
from shared.models import PlatformSettings


class PlatformStore:
    def __init__(self, db: Dynamo) -> None:
        self.db = db

    def get(self) -> PlatformSettings:
        item = self.db.get(schema.PLATFORM_PK, schema.SETTINGS_SK)
        if item is None:
            return PlatformSettings()
        return PlatformSettings(
            default_cluster_id=item.get("default_cluster_id"),
            updated_at=parse_iso(item.get("updated_at")),
        )

    def set_default_cluster(self, cluster_id: str | None, now: datetime) -> PlatformSettings:
        write = Expression().set("updated_at", iso(now))
        if cluster_id is None:
            write.remove("default_cluster_id")
        else:
            write.set("default_cluster_id", cluster_id)
        after = {"default_cluster_id": cluster_id}
        change = record_change("platform", "updated", "settings", None, after)
        self.db.update(schema.PLATFORM_PK, schema.SETTINGS_SK, write, events=[change])
        return self.get()

"""The collector's verbs over the table: a workload's health, a host's load.
Mixed into `Repository`, which provides `self.db`.

Neither write bumps `version` or `updated_at`: a measurement is not a change of
intent, and must never make an operation's conditional write fail."""

from __future__ import annotations

from infra import schema
from infra.codec import Item
from infra.dynamo import Dynamo
from infra.health_codec import health_attr, load_attr
from shared.errors import Conflict, NotFound
from shared.health import Health, HostLoad


class HealthRecords:
    db: Dynamo

    def record_workload_health(
        self, cluster_id: str, workload_id: str, health: Health, *, sample: bool = False
    ) -> bool:
        """Store `health` on the workload. With `sample`, only when it is newer than the
        stored sample (two collectors racing keep the latest). False when not stored:
        the workload is gone, or a newer sample is there."""
        values: Item = {":h": health_attr(health)}
        condition = "attribute_exists(pk)"
        if sample:
            condition += " AND (attribute_not_exists(#h.sampled_ns) OR #h.sampled_ns < :ns)"
            values[":ns"] = health.sampled_ns
        try:
            self.db.update(
                schema.cluster_pk(cluster_id),
                schema.workload_sk(workload_id),
                "SET #h = :h",
                values,
                names={"#h": "health"},
                condition=condition,
                on_fail=lambda _: Conflict("not stored"),
            )
        except Conflict:
            return False
        return True

    def record_host_load(self, host_id: str, load: HostLoad) -> None:
        self.db.update(
            schema.host_pk(host_id),
            schema.META,
            "SET #l = :l",
            {":l": load_attr(load)},
            names={"#l": "load"},
            condition="attribute_exists(pk)",
            on_fail=lambda _: NotFound("Host not found."),
        )

"""Operator verbs over the table: plans, cluster status, key revocation, eggs, hosts.
Mixed into `Repository`, which provides `self.db`."""

from __future__ import annotations

from datetime import datetime

from infra import codec, schema
from infra.codec import Item
from infra.dynamo import Dynamo
from shared.capacity import HUMAN_NAMES, api_name
from shared.clock import stamp
from shared.errors import Conflict, CorralError, HostInUse, NotFound, PlanBelowUsage
from shared.models import ApiKey, Cluster, ClusterStatus, Egg, Host, HostStatus, Plan, host_status


class FleetRecords:
    db: Dynamo

    # -- clusters -----------------------------------------------------------------

    def update_cluster(
        self,
        cluster_id: str,
        now: datetime,
        *,
        name: str | None = None,
        plan: Plan | None = None,
        egg_ids: tuple[str, ...] | None = None,
    ) -> Cluster:
        """Change name, plan and/or allow-list. A plan may not drop below current use:
        the condition compares every used counter with the new limit atomically."""
        sets = ["updated_at = :now", "version = version + :one"]
        values: Item = {":now": stamp(now), ":one": 1}
        conditions = ["attribute_exists(pk)"]
        if name is not None:
            sets.append("#n = :name")
            values[":name"] = name
        if egg_ids is not None:
            sets.append("egg_ids = :eggs")
            values[":eggs"] = list(egg_ids)
        if plan is not None:
            sets += [
                "plan_name = :plan",
                "max_containers = :max",
                "plan_default_lifetime = :deflife",
                "plan_max_lifetime = :maxlife",
            ]
            values |= {
                ":plan": plan.name,
                ":max": plan.max_containers,
                ":deflife": plan.default_lifetime,
                ":maxlife": plan.max_lifetime,
            }
            conditions.append("container_count <= :max")
            for res, limit in plan.limits.items():
                sets.append(f"lim_{res} = :lim_{res}")
                values[f":lim_{res}"] = limit
                conditions.append(f"used_{res} <= :lim_{res}")

        def refuse(old: Item | None) -> CorralError:
            if old is None:
                return NotFound("Cluster not found.")
            current = codec.cluster_from(old)
            assert plan is not None
            for res, used in current.used.items():
                if used > getattr(plan.limits, res):
                    shown = current.used.to_api()[api_name(res)]
                    return PlanBelowUsage(
                        f"The new plan's {HUMAN_NAMES[api_name(res)]} limit is below the "
                        f"{shown} in use; free it first."
                    )
            return PlanBelowUsage(
                f"The new plan allows {plan.max_containers} containers; "
                f"the cluster has {current.container_count}."
            )

        item = self.db.update(
            schema.cluster_pk(cluster_id),
            schema.META,
            "SET " + ", ".join(sets),
            values,
            condition=" AND ".join(conditions),
            names={"#n": "name"} if name is not None else None,
            on_fail=refuse,
        )
        return codec.cluster_from(item)

    def set_cluster_status(self, cluster_id: str, status: ClusterStatus, now: datetime) -> Cluster:
        item = self.db.update(
            schema.cluster_pk(cluster_id),
            schema.META,
            "SET #s = :s, updated_at = :now, version = version + :one",
            {":s": status.value, ":now": stamp(now), ":one": 1},
            names={"#s": "status"},
            condition="attribute_exists(pk)",
            on_fail=lambda _: NotFound("Cluster not found."),
        )
        return codec.cluster_from(item)

    # -- keys -----------------------------------------------------------------------

    def get_key(self, cluster_id: str, key_id: str) -> ApiKey:
        for item in self.db.query(schema.keys_of(cluster_id), sk_prefix=key_id, index=schema.GSI1):
            if item["id"] == key_id:
                return codec.key_from(item)
        raise NotFound("Key not found.")

    def revoke_key(self, key: ApiKey, now: datetime) -> None:
        """Mark the key revoked and give its slot back, in one transaction."""
        entries = [
            self.db.tx_update(
                schema.key_pk(key.key_hash),
                schema.META,
                "SET revoked = :yes, revoked_at = :now",
                {":yes": True, ":no": False, ":now": stamp(now)},
                condition="revoked = :no",
                on_fail=lambda _: Conflict("Key is already revoked."),
            )
        ]
        if key.cluster_id is not None:
            entries.append(
                self.db.tx_update(
                    schema.cluster_pk(key.cluster_id),
                    schema.META,
                    "SET key_count = key_count - :one, updated_at = :now",
                    {":one": 1, ":now": stamp(now)},
                )
            )
        self.db.transact(entries)

    # -- eggs -----------------------------------------------------------------------

    def replace_egg(self, egg: Egg) -> None:
        self.db.transact(
            [
                self.db.tx_put(
                    codec.egg_item(egg),
                    condition="attribute_exists(pk)",
                    on_fail=lambda _: NotFound("Egg not found."),
                )
            ]
        )

    def delete_egg(self, egg_id: str) -> None:
        self.db.delete(
            schema.egg_pk(egg_id),
            schema.META,
            condition="attribute_exists(pk)",
            on_fail=lambda _: NotFound("Egg not found."),
        )

    # -- hosts ----------------------------------------------------------------------

    def set_host_draining(self, host: Host, draining: bool, now: datetime) -> Host:
        """Drain or undrain, conditioned on the health that was read."""
        item = self.db.update(
            schema.host_pk(host.id),
            schema.META,
            "SET draining = :d, #s = :s, updated_at = :now",
            {
                ":d": draining,
                ":s": host_status(host.health, draining).value,
                ":h": host.health.value,
                ":now": stamp(now),
            },
            names={"#s": "status"},
            condition="attribute_exists(pk) AND health = :h",
            on_fail=lambda old: (
                NotFound("Host not found.")
                if old is None
                else Conflict("The host's health changed; retry.")
            ),
        )
        return codec.host_from(item)

    def record_host_health(
        self,
        host: Host,
        health: HostStatus,
        now: datetime,
        *,
        heartbeat: datetime | None,
        images: tuple[str, ...] | None = None,
    ) -> Host:
        """Store what the health check measured, conditioned on the drain flag read."""
        sets = ["health = :h", "#s = :s", "updated_at = :now"]
        values: Item = {
            ":h": health.value,
            ":s": host_status(health, host.draining).value,
            ":d": host.draining,
            ":now": stamp(now),
        }
        if heartbeat is not None:
            sets.append("last_heartbeat = :hb")
            values[":hb"] = stamp(heartbeat)
        if images is not None:
            sets.append("images = :img")
            values[":img"] = list(images)
        item = self.db.update(
            schema.host_pk(host.id),
            schema.META,
            "SET " + ", ".join(sets),
            values,
            names={"#s": "status"},
            condition="attribute_exists(pk) AND draining = :d",
            on_fail=lambda old: (
                NotFound("Host not found.")
                if old is None
                else Conflict("The host's drain flag changed; retry.")
            ),
        )
        return codec.host_from(item)

    def delete_host(self, host_id: str, *, force: bool) -> None:
        def refuse(old: Item | None) -> CorralError:
            if old is None:
                return NotFound("Host not found.")
            count = int(old.get("workload_count", 0))
            return HostInUse(
                f"The host still holds {count} workloads; drain it and move or delete them, "
                "or delete with ?force=true."
            )

        self.db.delete(
            schema.host_pk(host_id),
            schema.META,
            condition="attribute_exists(pk)"
            if force
            else "attribute_exists(pk) AND workload_count = :zero",
            values=None if force else {":zero": 0},
            on_fail=refuse,
        )

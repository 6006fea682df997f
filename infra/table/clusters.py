"""Clusters: the item `CLUSTER#<id>` / `#META` (listed on GSI1 under `CLUSTERS`), its
plan, status, allow-list, and the counters it carries: `used_*` and `container_count`
move with the workloads it holds, `key_count` with its API keys.

Growth is guarded as `used <= limit - growth` against the limit that was read (and the
limit itself must be unchanged), so no interleaving of requests can over-commit; a
failed guard is explained from the item as it was."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from infra.table import schema
from infra.table.attributes import Item, int_or_none, moment, resources_attrs, resources_from
from infra.table.dynamo import Dynamo, TxEntry
from infra.table.expression import Expression
from infra.table.placement import HostMove
from shared.capacity import (
    HUMAN_NAMES,
    Resources,
    api_name,
    below_zero,
    shortfall,
    shortfall_message,
)
from shared.changes import record_change
from shared.clock import iso, stamp
from shared.errors import (
    CapacityExceeded,
    Conflict,
    ContainerLimitReached,
    CorralError,
    InvalidCluster,
    KeyLimitReached,
    NotFound,
    PlanBelowUsage,
)
from shared.models import (
    MAX_KEYS_PER_CLUSTER,
    Cluster,
    ClusterConfig,
    ClusterStatus,
    ClusterType,
    Plan,
)
from shared.rules import egg_refusal


def cluster_item(c: Cluster) -> Item:
    return {
        "pk": schema.cluster_pk(c.id),
        "sk": schema.META,
        "gsi1pk": schema.ALL_CLUSTERS,
        "gsi1sk": c.id,
        "type": "cluster",
        "id": c.id,
        "name": c.name,
        "status": c.status.value,
        "plan_name": c.plan.name,
        "max_containers": c.plan.max_containers,
        "plan_default_lifetime": c.plan.default_lifetime,
        "plan_max_lifetime": c.plan.max_lifetime,
        "plan_requests_per_minute": c.plan.requests_per_minute,
        "plan_cluster_requests_per_minute": c.plan.cluster_requests_per_minute,
        **resources_attrs("lim", c.plan.limits),
        **resources_attrs("used", c.used),
        "container_count": c.container_count,
        "egg_ids": list(c.egg_ids),
        "key_count": c.key_count,
        "cluster_type": c.type.value,
        "description": c.description,
        "default_egg_id": c.config.default_egg_id,
        "created_at": iso(c.created_at),
        "updated_at": iso(c.updated_at),
        "version": c.version,
    }


def cluster_from(item: Item) -> Cluster:
    return Cluster(
        id=item["id"],
        name=item["name"],
        status=ClusterStatus(item["status"]),
        plan=Plan(
            name=item["plan_name"],
            limits=resources_from("lim", item),
            max_containers=int(item["max_containers"]),
            default_lifetime=int_or_none(item.get("plan_default_lifetime")),
            max_lifetime=int_or_none(item.get("plan_max_lifetime")),
            requests_per_minute=int_or_none(item.get("plan_requests_per_minute")),
            cluster_requests_per_minute=int_or_none(item.get("plan_cluster_requests_per_minute")),
        ),
        used=resources_from("used", item),
        container_count=int(item["container_count"]),
        egg_ids=tuple(item.get("egg_ids", [])),
        key_count=int(item.get("key_count", 0)),
        type=ClusterType(item.get("cluster_type", ClusterType.MANAGED.value)),
        description=item.get("description"),
        config=ClusterConfig(default_egg_id=item.get("default_egg_id")),
        created_at=moment(item["created_at"]),
        updated_at=moment(item["updated_at"]),
        version=int(item["version"]),
    )


# The cluster's workload counters: `status:<status>` (its workloads in each status,
# the gone ones left out) and `on:<host id>` (its live workloads on each host), in an
# item of their own beside the cluster's (`CLUSTER#<id>` / `#COUNTS`), moved in the
# transactions that change the statuses they count.
COUNTS_SK = "#COUNTS"


@dataclass(frozen=True)
class WorkloadCounts:
    """What the operator's cluster view counts of its workloads."""

    node_count: int = 0  # hosts holding at least one of its live workloads
    running_tasks: int = 0


def counts_from(item: Item | None) -> WorkloadCounts:
    item = item or {}
    return WorkloadCounts(
        node_count=sum(1 for k, v in item.items() if k.startswith("on:") and int(v) > 0),
        running_tasks=int(item.get("status:running", 0)),
    )


def move_used(write: Expression, delta: Resources, count_attr: str, count: int) -> Expression:
    """Move a cluster's or a host's `used_*` counters by `delta` and its workload count
    by `count`, bumping its version. Whatever the caller checked, no counter goes below
    zero: each one that moves down must hold at least what it gives back."""
    for name, amount in delta.items():
        if amount != 0:
            write.add(f"used_{name}", amount)
        if amount < 0:
            write.when_at_least(f"used_{name}", -amount)
    if count:
        write.add(count_attr, count)
    if count < 0:
        write.when_at_least(count_attr, -count)
    return write.add("version", 1)


class ClusterStore:
    def __init__(self, db: Dynamo) -> None:
        self.db = db

    def get(self, cluster_id: str) -> Cluster:
        item = self.db.get(schema.cluster_pk(cluster_id), schema.META)
        if item is None:
            raise NotFound("Cluster not found.")
        return cluster_from(item)

    def list(self) -> list[Cluster]:
        return [cluster_from(i) for i in self.db.query(schema.ALL_CLUSTERS, index=schema.GSI1)]

    def create(self, cluster: Cluster) -> None:
        after = {"name": cluster.name, "status": cluster.status.value}
        change = record_change("cluster", "created", cluster.id, cluster.id, after)
        self.db.put_new(cluster_item(cluster), Conflict("Cluster already exists."), [change])

    def update(
        self,
        cluster_id: str,
        now: datetime,
        *,
        name: str | None = None,
        plan: Plan | None = None,
        egg_ids: tuple[str, ...] | None = None,
        cluster_type: ClusterType | None = None,
        description: str | None = None,
        config: ClusterConfig | None = None,
    ) -> Cluster:
        """Change name, plan, allow-list, type, description and/or config. A plan may not
        drop below current use: the condition compares every used counter with the new
        limit atomically."""
        write = Expression().set("updated_at", stamp(now)).add("version", 1).when_exists()
        if name is not None:
            write.set("name", name)
        if cluster_type is not None:
            write.set("cluster_type", cluster_type.value)
        if description is not None:
            write.set("description", description)
        if config is not None:
            if config.default_egg_id is None:
                write.remove("default_egg_id")
            else:
                write.set("default_egg_id", config.default_egg_id)
        if egg_ids is not None:
            write.set("egg_ids", list(egg_ids))
        if plan is not None:
            write.set_all(
                {
                    "plan_name": plan.name,
                    "max_containers": plan.max_containers,
                    "plan_default_lifetime": plan.default_lifetime,
                    "plan_max_lifetime": plan.max_lifetime,
                    "plan_requests_per_minute": plan.requests_per_minute,
                    "plan_cluster_requests_per_minute": plan.cluster_requests_per_minute,
                }
            )
            write.when_at_most("container_count", plan.max_containers)
            for res, limit in plan.limits.items():
                write.set(f"lim_{res}", limit).when_at_most(f"used_{res}", limit)

        def refuse(old: Item | None) -> CorralError:
            if old is None:
                return NotFound("Cluster not found.")
            current = cluster_from(old)
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

        after: Item = {"name": name, "type": cluster_type, "description": description}
        if egg_ids is not None:
            after["egg_ids"] = list(egg_ids)
        if plan is not None:
            after["plan"] = {"name": plan.name, **plan.limits.to_api()}
        if config is not None:
            after["default_egg_id"] = config.default_egg_id
        after = {k: v for k, v in after.items() if v is not None}
        change = record_change("cluster", "updated", cluster_id, cluster_id, after)
        item = self.db.update(
            schema.cluster_pk(cluster_id), schema.META, write, on_fail=refuse, events=[change]
        )
        return cluster_from(item)

    def set_status(self, cluster_id: str, status: ClusterStatus, now: datetime) -> Cluster:
        write = Expression().set("status", status.value).set("updated_at", stamp(now))
        write.add("version", 1).when_exists()
        change = record_change("cluster", status.value, cluster_id, cluster_id, {"status": status})
        item = self.db.update(
            schema.cluster_pk(cluster_id),
            schema.META,
            write,
            on_fail=lambda _: NotFound("Cluster not found."),
            events=[change],
        )
        return cluster_from(item)

    def workload_counts(self, cluster_ids: Iterable[str]) -> dict[str, WorkloadCounts]:
        """Each cluster's workload counts: one item per cluster, whatever its workloads."""
        ids = list(dict.fromkeys(cluster_ids))
        found: dict[tuple[str, str], Item] = {}
        for start in range(0, len(ids), 100):  # a BatchGetItem takes 100 keys
            chunk = ids[start : start + 100]
            found |= self.db.get_many([(schema.cluster_pk(c), COUNTS_SK) for c in chunk])
        return {c: counts_from(found.get((schema.cluster_pk(c), COUNTS_SK))) for c in ids}

    # -- transaction entries -----------------------------------------------------

    def count_moves(self, cluster_id: str, moves: Mapping[str, HostMove]) -> tuple[TxEntry, ...]:
        """Move the cluster's workload counts by the status changes of `moves` (host id
        -> what moves there); no entry when no status changes."""
        write = Expression()
        total = sum(moves.values(), HostMove())
        for status, amount in sorted(total.statuses.items()):
            if amount:
                write.count(f"status:{status}", amount)
        for host_id, move in sorted(moves.items()):
            live = sum(move.statuses.values())  # +1 placed, -1 gone, 0 a transition
            if live:
                write.count(f"on:{host_id}", live)
        if not write.arguments():
            return ()
        return (self.db.tx_update(schema.cluster_pk(cluster_id), COUNTS_SK, write),)

    def reserve(
        self,
        cluster: Cluster,
        delta: Resources,
        count: int,
        now: datetime,
        *,
        egg_id: str | None = None,
    ) -> TxEntry:
        """Move the counters by `delta` and `count` workloads; growth is checked against
        the plan that was read, and the cluster must be active. With `egg_id` (a
        create), the egg must still be allowed and the plan's lifetimes those read
        (what a create decides from the cluster besides its limits)."""
        limits = cluster.plan.limits
        write = move_used(Expression(), delta, "container_count", count)
        write.set("updated_at", stamp(now))
        write.when_equal("status", ClusterStatus.ACTIVE.value)
        if egg_id is not None:
            write.when_contains("egg_ids", egg_id)
            write.when_same("plan_default_lifetime", cluster.plan.default_lifetime)
            write.when_same("plan_max_lifetime", cluster.plan.max_lifetime)
        for name, grow in delta.items():
            if grow > 0:
                write.when_at_most(f"used_{name}", getattr(limits, name) - grow)
                write.when_equal(f"lim_{name}", getattr(limits, name))
        if count > 0:
            write.when_at_most("container_count", cluster.plan.max_containers - count)
            write.when_equal("max_containers", cluster.plan.max_containers)

        def refuse(old: Item | None) -> CorralError:
            if old is None:
                return NotFound("Cluster not found.")
            current = cluster_from(old)
            if current.status != ClusterStatus.ACTIVE:
                return InvalidCluster(f"Cluster is {current.status.value}.")
            if (
                current.plan.limits != limits
                or current.plan.max_containers != cluster.plan.max_containers
            ):
                return Conflict("The cluster's plan changed; retry.")
            short = shortfall(current.plan.limits, current.used, delta.positive_part())
            if short:
                return CapacityExceeded(shortfall_message(short))
            if count > 0 and current.container_count + count > current.plan.max_containers:
                return ContainerLimitReached(
                    f"Cluster already has the maximum of {current.plan.max_containers} containers."
                )
            negative = below_zero(current.used, delta)
            if negative:
                return Conflict(f"The cluster's {negative} in use would go below zero.")
            refusal = egg_refusal(current, egg_id) if egg_id is not None else None
            return refusal or Conflict("The cluster changed; retry.")

        return self.db.tx_update(schema.cluster_pk(cluster.id), schema.META, write, on_fail=refuse)

    def release(self, cluster_id: str, resources: Resources, now: datetime) -> TxEntry:
        """Give one gone workload's resources back."""
        write = move_used(Expression(), Resources() - resources, "container_count", -1)
        write.set("updated_at", stamp(now))
        return self.db.tx_update(schema.cluster_pk(cluster_id), schema.META, write)

    def release_resources(self, cluster_id: str, resources: Resources, now: datetime) -> TxEntry:
        """Give back resources held by something other than a workload (a database)."""
        write = move_used(Expression(), Resources() - resources, "container_count", 0)
        write.set("updated_at", stamp(now))
        return self.db.tx_update(schema.cluster_pk(cluster_id), schema.META, write)

    def take_key_slot(self, cluster_id: str, now: datetime) -> TxEntry:
        def refuse(old: Item | None) -> CorralError:
            if old is None:
                return NotFound("Cluster not found.")
            return KeyLimitReached(
                f"Cluster already has the maximum of {MAX_KEYS_PER_CLUSTER} API keys."
            )

        write = Expression().add("key_count", 1).set("updated_at", stamp(now))
        write.when_exists().when_below("key_count", MAX_KEYS_PER_CLUSTER)
        return self.db.tx_update(schema.cluster_pk(cluster_id), schema.META, write, on_fail=refuse)

    def give_key_slot(self, cluster_id: str, now: datetime) -> TxEntry:
        write = Expression().add("key_count", -1).set("updated_at", stamp(now))
        return self.db.tx_update(schema.cluster_pk(cluster_id), schema.META, write)

"""Environments over the table: the env item, and the one transaction that creates an
env with all its VMs or nothing. Mixed into `Repository`, which provides `self.db`.

An env is the item `CLUSTER#<cluster>` / `ENV#<id>`, listed on GSI1 under `ENVS` with the
sort key `<id>#<cluster>` (so an id is found without knowing its cluster). Its VMs are
workload items like any other, with `vm.env_id` set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from infra import codec, counters, schema
from infra.codec import Item
from infra.dynamo import Dynamo, FailureHandler, TxEntry
from infra.leases import lease_update
from shared.capacity import Resources
from shared.clock import iso, parse_iso, stamp
from shared.envs import Env, EnvStatus
from shared.errors import ActionNotAllowed, Conflict, CorralError, NotFound
from shared.models import Cluster, Host, Operation, Workload
from shared.states import WorkloadStatus

ALL_ENVS = "ENVS"


def env_sk(env_id: str) -> str:
    return f"ENV#{env_id}"


class EnvExists(Conflict):
    """The cluster has a live env of that id already."""


def env_item(env: Env) -> Item:
    return {
        "pk": schema.cluster_pk(env.cluster_id),
        "sk": env_sk(env.id),
        "gsi1pk": ALL_ENVS,
        "gsi1sk": f"{env.id}#{env.cluster_id}",
        "type": "env",
        "id": env.id,
        "cluster_id": env.cluster_id,
        "owner": env.owner,
        "ssh_keys": list(env.ssh_keys),
        "lifetime": env.lifetime,
        "vm_ids": list(env.vm_ids),
        "status": env.status.value,
        "created_at": stamp(env.created_at),
        "updated_at": stamp(env.updated_at),
        "expires_at": stamp(env.expires_at),
        "expires_epoch": int(env.expires_at.timestamp()),
        # The table drops the record a retention period after its VMs expire.
        schema.TTL_ATTRIBUTE: schema.expires_epoch(env.expires_at),
        "version": env.version,
    }


def env_from(item: Item) -> Env:
    return Env(
        id=item["id"],
        cluster_id=item["cluster_id"],
        owner=item.get("owner", ""),
        ssh_keys=tuple(item.get("ssh_keys", [])),
        lifetime=int(item["lifetime"]),
        vm_ids=tuple(item.get("vm_ids", [])),
        status=EnvStatus(item["status"]),
        created_at=_when(item["created_at"]),
        updated_at=_when(item["updated_at"]),
        expires_at=_when(item["expires_at"]),
        version=int(item.get("version", 1)),
    )


def _when(text: str) -> datetime:
    moment = parse_iso(text)
    assert moment is not None
    return moment


class EnvRecords:
    db: Dynamo

    # -- reads ------------------------------------------------------------------

    def get_env(self, cluster_id: str, env_id: str) -> Env:
        item = self.db.get(schema.cluster_pk(cluster_id), env_sk(env_id))
        if item is None:
            raise NotFound("Environment not found.")
        return env_from(item)

    def find_envs(self, env_id: str) -> list[Env]:
        """The envs of that id, in any cluster (read again, consistently)."""
        found = self.db.query(ALL_ENVS, sk_prefix=f"{env_id}#", index=schema.GSI1)
        envs = []
        for item in found:
            if item["id"] == env_id:
                try:
                    envs.append(self.get_env(item["cluster_id"], env_id))
                except NotFound:
                    continue
        return envs

    def list_envs(self, cluster_id: str | None = None) -> list[Env]:
        if cluster_id is not None:
            items = self.db.query(schema.cluster_pk(cluster_id), sk_prefix="ENV#", consistent=True)
        else:
            items = self.db.query(ALL_ENVS, index=schema.GSI1)
        return [env_from(item) for item in items]

    def find_workload(self, workload_id: str, hosts: Sequence[Host]) -> Workload:
        """A workload by id alone: looked up under each host on GSI1, then read."""
        for host in hosts:
            for item in self.db.query(
                schema.host_pk(host.id),
                sk_prefix=schema.workload_sk(workload_id),
                index=schema.GSI1,
            ):
                if item["id"] == workload_id:
                    found = self.db.get(item["pk"], item["sk"])
                    if found is not None:
                        return codec.workload_from(found)
        raise NotFound("VM not found.")

    # -- writes -----------------------------------------------------------------

    def create_env(
        self,
        env: Env,
        vms: Sequence[tuple[Workload, Operation]],
        cluster: Cluster,
        hosts: Mapping[str, Host],
    ) -> None:
        """Write the env, every VM and its provision operation, and raise the cluster's
        counters and each host's (once per host, by the sum of its VMs) in one
        transaction: all of it or nothing."""
        now = iso(env.created_at)
        entries: list[TxEntry] = [
            self.db.tx_put(
                env_item(env),
                # A deleted or expired env's id may be used again.
                condition="attribute_not_exists(pk) OR #s = :deleting OR expires_epoch <= :now",
                on_fail=lambda _: EnvExists(
                    f"Environment {env.id} already exists in cluster {env.cluster_id}."
                ),
                names={"#s": "status"},
                values={
                    ":deleting": EnvStatus.DELETING.value,
                    ":now": int(env.created_at.timestamp()),
                },
            )
        ]
        total = Resources()
        per_host: dict[str, tuple[Resources, int]] = {}
        for workload, operation in vms:
            entries.append(
                self.db.tx_put(
                    codec.workload_item(workload),
                    condition="attribute_not_exists(pk)",
                    on_fail=lambda _: Conflict("A VM id is taken; retry."),
                )
            )
            entries.append(
                self.db.tx_put(
                    codec.operation_item(operation), condition="attribute_not_exists(pk)"
                )
            )
            total = total + workload.resources
            held, count = per_host.get(workload.host_id, (Resources(), 0))
            per_host[workload.host_id] = (held + workload.resources, count + 1)
        entries.append(counters.cluster_counters(self.db, cluster, total, len(vms), now))
        for host_id, (held, count) in per_host.items():
            entries.append(counters.host_counters(self.db, hosts[host_id], held, count, now))
        self.db.transact(entries)

    def set_env_lease(
        self, env: Env, vms: Sequence[Workload], expires_at: datetime, now: datetime
    ) -> None:
        """Renew an environment and every live VM of it, in one transaction."""
        entries = [
            self.db.tx_update(
                schema.cluster_pk(env.cluster_id),
                env_sk(env.id),
                "SET expires_at = :exp, expires_epoch = :epoch, #ttl = :ttl, "
                "updated_at = :now, version = version + :one",
                {
                    ":exp": stamp(expires_at),
                    ":epoch": int(expires_at.timestamp()),
                    ":ttl": schema.expires_epoch(expires_at),
                    ":now": stamp(now),
                    ":one": 1,
                },
                names={"#ttl": schema.TTL_ATTRIBUTE},
                condition="attribute_exists(pk)",
                on_fail=lambda _: NotFound("Environment not found."),
            )
        ]
        for vm in vms:
            lease = lease_update(vm, expires_at, now)
            entries.append(
                self.db.tx_update(
                    schema.cluster_pk(vm.cluster_id), schema.workload_sk(vm.id), **lease
                )
            )
        self.db.transact(entries)

    def begin_env_operations(
        self,
        env: Env,
        changes: Sequence[tuple[Workload, Operation]],
        now: datetime,
        *,
        deleting: bool = False,
    ) -> None:
        """Record one operation on each VM of `changes` (each must be idle, as read) in
        one transaction; with `deleting`, the VMs become `deleting` and so does the env."""
        at = stamp(now)
        entries: list[TxEntry] = []
        for workload, operation in changes:
            values: Item = {":op": operation.id, ":v": workload.version, ":one": 1, ":now": at}
            sets = ["pending_op = :op", "last_op = :op", "version = version + :one"]
            sets.append("updated_at = :now")
            names = None
            if deleting:
                sets.append("#s = :deleting")
                values[":deleting"] = WorkloadStatus.DELETING.value
                names = {"#s": "status"}
            entries.append(
                self.db.tx_update(
                    schema.cluster_pk(workload.cluster_id),
                    schema.workload_sk(workload.id),
                    "SET " + ", ".join(sets),
                    values,
                    names=names,
                    condition="version = :v AND attribute_not_exists(pending_op)",
                    on_fail=_vm_busy(workload),
                )
            )
            entries.append(
                self.db.tx_put(
                    codec.operation_item(operation), condition="attribute_not_exists(pk)"
                )
            )
        if deleting:
            entries.append(
                self.db.tx_update(
                    schema.cluster_pk(env.cluster_id),
                    env_sk(env.id),
                    "SET #s = :deleting, updated_at = :now, version = version + :one, #ttl = :ttl",
                    {
                        ":deleting": EnvStatus.DELETING.value,
                        ":now": at,
                        ":one": 1,
                        ":ttl": schema.expires_epoch(now),
                        ":v": env.version,
                    },
                    names={"#s": "status", "#ttl": schema.TTL_ATTRIBUTE},
                    condition="version = :v",
                    on_fail=lambda old: (
                        NotFound("Environment not found.")
                        if old is None
                        else Conflict("The environment changed meanwhile; retry.")
                    ),
                )
            )
        if entries:
            self.db.transact(entries)


def _vm_busy(workload: Workload) -> FailureHandler:
    def refuse(old: Item | None) -> CorralError:
        if old is None:
            return NotFound(f"VM {workload.id} ({workload.name}) no longer exists.")
        if old.get("pending_op"):
            return ActionNotAllowed(
                f"VM {workload.id} ({workload.name}) has an operation in flight "
                f"({old['pending_op']}); wait for it to finish."
            )
        return Conflict(f"VM {workload.id} ({workload.name}) changed meanwhile; retry.")

    return refuse

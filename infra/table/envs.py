"""Environments: the item `CLUSTER#<cluster>` / `ENV#<id>`, listed on GSI1 under `ENVS`
with the sort key `<id>#<cluster>` (so an id is found without knowing its cluster). Its
VMs are workload items like any other, with `vm.env_id` set; the transactions that
write an env together with its VMs are the repository's."""

from __future__ import annotations

from datetime import datetime

from infra.table import schema
from infra.table.attributes import Item, moment
from infra.table.dynamo import Dynamo, FailureHandler, TxEntry
from infra.table.expression import Expression
from shared.clock import stamp
from shared.envs import Env, EnvStatus
from shared.errors import ActionNotAllowed, Conflict, CorralError, NotFound
from shared.models import Workload

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
        created_at=moment(item["created_at"]),
        updated_at=moment(item["updated_at"]),
        expires_at=moment(item["expires_at"]),
        version=int(item.get("version", 1)),
    )


def refuse_vm_change(workload: Workload) -> FailureHandler:
    """Why a change to one VM of an env was refused, naming the VM."""

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


class EnvStore:
    def __init__(self, db: Dynamo) -> None:
        self.db = db

    def get(self, cluster_id: str, env_id: str) -> Env:
        item = self.db.get(schema.cluster_pk(cluster_id), env_sk(env_id))
        if item is None:
            raise NotFound("Environment not found.")
        return env_from(item)

    def find(self, env_id: str) -> list[Env]:
        """The envs of that id, in any cluster (read again, consistently)."""
        found = self.db.query(ALL_ENVS, sk_prefix=f"{env_id}#", index=schema.GSI1)
        envs = []
        for item in found:
            if item["id"] == env_id:
                try:
                    envs.append(self.get(item["cluster_id"], env_id))
                except NotFound:
                    continue
        return envs

    def list(self, cluster_id: str | None = None) -> list[Env]:
        if cluster_id is not None:
            items = self.db.query(schema.cluster_pk(cluster_id), sk_prefix="ENV#", consistent=True)
        else:
            items = self.db.query(ALL_ENVS, index=schema.GSI1)
        return [env_from(item) for item in items]

    # -- transaction entries -----------------------------------------------------

    def put_new(self, env: Env) -> TxEntry:
        """The env, unless the cluster has a live one of that id: a deleted or expired
        env's id may be used again."""
        condition = Expression()
        condition.when(
            f"attribute_not_exists({condition.name('pk')})"
            f" OR {condition.name('status')} = {condition.value(EnvStatus.DELETING.value)}"
            f" OR {condition.name('expires_epoch')}"
            f" <= {condition.value(int(env.created_at.timestamp()))}"
        )
        return self.db.tx_put(
            env_item(env),
            condition,
            on_fail=lambda _: EnvExists(
                f"Environment {env.id} already exists in cluster {env.cluster_id}."
            ),
        )

    def lease(self, env: Env, expires_at: datetime, now: datetime) -> TxEntry:
        write = Expression().set_all(
            {
                "expires_at": stamp(expires_at),
                "expires_epoch": int(expires_at.timestamp()),
                schema.TTL_ATTRIBUTE: schema.expires_epoch(expires_at),
                "updated_at": stamp(now),
            }
        )
        write.add("version", 1).when_exists()
        return self.db.tx_update(
            schema.cluster_pk(env.cluster_id),
            env_sk(env.id),
            write,
            on_fail=lambda _: NotFound("Environment not found."),
        )

    def mark_deleting(self, env: Env, now: datetime) -> TxEntry:
        """The env is being deleted, if unchanged since it was read; it ages out."""
        write = Expression().set_all(
            {
                "status": EnvStatus.DELETING.value,
                "updated_at": stamp(now),
                schema.TTL_ATTRIBUTE: schema.expires_epoch(now),
            }
        )
        write.add("version", 1).when_equal("version", env.version)
        return self.db.tx_update(
            schema.cluster_pk(env.cluster_id),
            env_sk(env.id),
            write,
            on_fail=lambda old: (
                NotFound("Environment not found.")
                if old is None
                else Conflict("The environment changed meanwhile; retry.")
            ),
        )

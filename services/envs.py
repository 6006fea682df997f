"""What a change to an environment means: validate, place every VM, write intent in one
transaction, enqueue the jobs. Used by the operator routes in `handlers/admin/envs.py`
(and 003's own paths, `handlers/compat/`).

An env is a named group of VMs of one cluster (Corral requires `cluster_id`: the VMs
count against that cluster's plan), created together with shared ssh keys and one
lifetime. Creating one is all or nothing: every VM is placed first (best fit, the env's
own VMs counted against their hosts as they are placed), then one transaction writes the
env, every VM and its provision operation, and the cluster's and hosts' counters. A VM
that cannot be placed is named (`vms[i]`) and nothing is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from infra.table.envs import EnvExists
from services import operations
from services.deps import Deps
from services.platform import PlatformService
from shared import rules
from shared.capacity import Resources
from shared.env_requests import ENGINES_003, CreateEnvReq, VmSpec
from shared.envs import Env, EnvStatus, VmNeed, place_all, shown_status
from shared.errors import (
    ActionNotAllowed,
    BelowMinimum,
    Conflict,
    EggNotAllowed,
    InvalidInput,
    NoHostAvailable,
    NotFound,
)
from shared.models import Cluster, Egg, Engine, Operation, OperationParams, Workload
from shared.requests import LeaseRequest
from shared.states import (
    OperationKind,
    PowerSignal,
    WorkloadStatus,
    power_target,
)
from shared.vm import WorkloadVm

ATTEMPTS = 3
AVAILABLE_ENGINES = (Engine.QEMU.value,)

# env action -> the signal each VM gets, by the VM's status (others are left alone)
ENV_SIGNALS: dict[str, dict[WorkloadStatus, PowerSignal]] = {
    "stop": {
        WorkloadStatus.RUNNING: PowerSignal.STOP,
        WorkloadStatus.PAUSED: PowerSignal.STOP,
    },
    "start": {
        WorkloadStatus.STOPPED: PowerSignal.START,
        WorkloadStatus.ERROR: PowerSignal.START,
        WorkloadStatus.PAUSED: PowerSignal.RESUME,
    },
}


# -- decisions --------------------------------------------------------------------


class EnvService:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._repo = deps.repo

    # -- reads ------------------------------------------------------------------

    def find(self, env_id: str, cluster_id: str | None) -> Env:
        if cluster_id is not None:
            return self._repo.envs.get(cluster_id, env_id)
        found = self._repo.envs.find(env_id)
        if not found:
            raise NotFound("Environment not found.")
        if len(found) > 1:
            raise InvalidInput(
                f"Environment {env_id} exists in {len(found)} clusters; "
                "say which with ?cluster_id=."
            )
        return found[0]

    def vms_of(self, env: Env) -> list[Workload]:
        wanted = set(env.vm_ids)
        return [w for w in self._repo.workloads.in_cluster(env.cluster_id) if w.id in wanted]

    # -- create -----------------------------------------------------------------

    def create(self, body: CreateEnvReq) -> tuple[Env, list[Workload], list[Operation]]:
        _check_engines(body.vms)
        cluster_id = PlatformService(self._deps).cluster_for(body.cluster_id)
        cluster = self._repo.clusters.get(cluster_id)
        rules.require_active(cluster)
        eggs = self._eggs_for(cluster, body.vms)
        needs = [
            VmNeed(i, _resources(i, spec, egg), spec.image)
            for i, (spec, egg) in enumerate(zip(body.vms, eggs, strict=True))
        ]
        now = self._deps.clock()
        expires_at = rules.expiry_for(now, cluster.plan, body.lifetime, None)
        assert expires_at is not None  # a lifetime is always given
        vm_ids = [self._deps.new_id() for _ in body.vms]
        op_ids = [self._deps.new_operation_id() for _ in body.vms]
        env = Env(
            id=body.id,
            cluster_id=cluster.id,
            owner=body.owner,
            ssh_keys=tuple(dict.fromkeys(body.ssh_keys)),
            lifetime=body.lifetime,
            vm_ids=tuple(vm_ids),
            status=EnvStatus.ACTIVE,
            created_at=now,
            updated_at=now,
            expires_at=expires_at,
        )
        for attempt in range(ATTEMPTS):
            total = sum((n.resources for n in needs), start=Resources())
            rules.require_room(cluster, total, len(needs), "the pool for the environment's VMs")
            hosts = place_all(self._repo.placement.hosts(consistent=attempt > 0), needs)
            pairs = []
            for need, spec, egg, host, vm_id, op_id in zip(
                needs, body.vms, eggs, hosts, vm_ids, op_ids, strict=True
            ):
                workload = Workload(
                    id=vm_id,
                    cluster_id=cluster.id,
                    name=f"{env.id}-{need.index}",
                    egg_id=egg.id,
                    engine=Engine.QEMU,
                    host_id=host.id,
                    resources=need.resources,
                    status=WorkloadStatus.PROVISIONING,
                    created_at=now,
                    updated_at=now,
                    pending_op=op_id,
                    last_op=op_id,
                    expires_at=expires_at,
                    vm=WorkloadVm(
                        image=spec.image,
                        ssh_keys=env.ssh_keys,
                        ports=tuple(sorted(set(spec.ports))),
                        deny_outgoing=spec.deny_outgoing,
                        env_id=env.id,
                    ),
                )
                params = OperationParams(env_id=env.id)
                pairs.append(
                    (workload, _operation(workload, op_id, OperationKind.PROVISION, params, now))
                )
            try:
                self._repo.create_env(env, pairs, cluster, {h.id: h for h in hosts})
            except EnvExists:
                raise
            except (NoHostAvailable, Conflict):
                # A host or the cluster changed since it was read: place again.
                if attempt == ATTEMPTS - 1:
                    raise
                cluster = self._repo.clusters.get(cluster_id)
                rules.require_active(cluster)
                continue
            for _, operation in pairs:
                operations.enqueue(self._deps.jobs, operation)
            return env, [w for w, _ in pairs], [o for _, o in pairs]
        raise Conflict("The cluster or its hosts kept changing; retry.")  # pragma: no cover

    def _eggs_for(self, cluster: Cluster, specs: Sequence[VmSpec]) -> list[Egg]:
        """The egg each VM boots with: a qemu egg the cluster allows whose image is the
        VM's (the first by name when several are)."""
        allowed = sorted(
            (e for e in self._repo.eggs.list() if e.id in cluster.egg_ids),
            key=lambda e: (e.name, e.id),
        )
        qemu = [e for e in allowed if e.engine == Engine.QEMU]
        chosen = []
        for i, spec in enumerate(specs):
            egg = next((e for e in qemu if e.image == spec.image), None)
            if egg is None:
                images = ", ".join(sorted({e.image for e in qemu})) or "none"
                raise EggNotAllowed(
                    f"vms[{i}].image: no qemu egg allowed in cluster {cluster.name} boots "
                    f"{spec.image} (the cluster's VM images: {images})."
                )
            chosen.append(egg)
        return chosen

    # -- power and delete -------------------------------------------------------

    def power(self, env: Env, action: str) -> tuple[list[Workload], list[Operation]]:
        """Stop or start every VM of the env that is not there yet, in one transaction."""
        signals = ENV_SIGNALS[action]
        vms = self.vms_of(env)
        live = [w for w in vms if not w.status.is_gone]
        if env.status == EnvStatus.DELETING or not live:
            shown = shown_status(env, vms)
            raise ActionNotAllowed(f"Cannot {action} environment {env.id}: it is {shown}.")
        _require_idle(live)
        now = self._deps.clock()
        changes = []
        for w in live:
            signal = signals.get(w.status)
            if signal is None:
                continue
            target = power_target(signal, w.status)
            params = OperationParams(signal=signal, target=target, env_id=env.id)
            op = _operation(w, self._deps.new_operation_id(), OperationKind.POWER, params, now)
            changes.append((w, op))
        self._repo.begin_env_operations(env, changes, now)
        for _, op in changes:
            operations.enqueue(self._deps.jobs, op)
        ops = {w.id: op for w, op in changes}
        return _pending(vms, ops), list(ops.values())

    def lease(self, env: Env, body: LeaseRequest) -> tuple[Env, list[Workload]]:
        """Renew (or shorten) the environment's lease and its live VMs', within the plan."""
        cluster = self._repo.clusters.get(env.cluster_id)
        now = self._deps.clock()
        expires_at = rules.expiry_for(now, cluster.plan, body.lifetime, body.expires_at)
        assert expires_at is not None  # LeaseRequest demands one of the two
        live = [vm for vm in self.vms_of(env) if not vm.status.is_gone]
        if not live:
            raise NotFound("Environment has no VMs left to renew.")
        _require_idle_for_lease(live)
        self._repo.set_env_lease(env, live, expires_at, now)
        renewed = self._repo.envs.get(env.cluster_id, env.id)
        return renewed, self.vms_of(renewed)

    def delete(self, env: Env) -> tuple[Env, list[Workload], list[Operation]]:
        vms = self.vms_of(env)
        live = [w for w in vms if not w.status.is_gone and w.status != WorkloadStatus.DELETING]
        _require_idle(live)
        now = self._deps.clock()
        changes = []
        for w in live:
            params = OperationParams(previous=w.status, env_id=env.id)
            op = _operation(w, self._deps.new_operation_id(), OperationKind.DELETE, params, now)
            changes.append((w, op))
        self._repo.begin_env_operations(env, changes, now, deleting=True)
        for _, op in changes:
            operations.enqueue(self._deps.jobs, op)
        ops = {w.id: op for w, op in changes}
        deleting = [
            replace(w, status=WorkloadStatus.DELETING) if w.id in ops else w
            for w in _pending(vms, ops)
        ]
        gone = replace(env, status=EnvStatus.DELETING, updated_at=now)
        return gone, deleting, list(ops.values())


def _check_engines(specs: Sequence[VmSpec]) -> None:
    for i, spec in enumerate(specs):
        if spec.engine not in AVAILABLE_ENGINES:
            what = "not available" if spec.engine in ENGINES_003 else "not an engine"
            raise InvalidInput(
                f"vms[{i}].engine: {spec.engine} is {what}; "
                f"available engines: {', '.join(AVAILABLE_ENGINES)}."
            )


def _resources(index: int, spec: VmSpec, egg: Egg) -> Resources:
    """The egg's defaults with the VM's cpu, mem and disk, and one `ports` unit per
    forwarded port (22 included), checked against the egg's minimums."""
    resources = replace(
        egg.defaults,
        cpu_centi=spec.cpu * 100,
        ram_mb=spec.mem,
        storage_mb=spec.disk,
        ports=rules.forwarded_count(spec.ports),
    )
    try:
        rules.check_minimums(resources, egg)
    except BelowMinimum as exc:
        raise BelowMinimum(f"vms[{index}]: {exc.message}") from exc
    return resources


def _require_idle_for_lease(vms: Sequence[Workload]) -> None:
    deleting = [vm.id for vm in vms if vm.status == WorkloadStatus.DELETING]
    if deleting:
        raise ActionNotAllowed(f"VMs {', '.join(deleting)} are being deleted.")


def _require_idle(vms: Sequence[Workload]) -> None:
    for w in vms:
        if w.pending_op:
            raise ActionNotAllowed(
                f"VM {w.id} ({w.name}) has an operation in flight ({w.pending_op}); "
                "wait for it to finish."
            )


def _operation(
    workload: Workload,
    operation_id: str,
    kind: OperationKind,
    params: OperationParams,
    now: datetime,
) -> Operation:
    return operations.queued(operation_id, workload.cluster_id, workload.id, kind, params, now)


def _pending(vms: Sequence[Workload], ops: dict[str, Operation]) -> list[Workload]:
    return [
        replace(w, pending_op=ops[w.id].id, last_op=ops[w.id].id) if w.id in ops else w for w in vms
    ]

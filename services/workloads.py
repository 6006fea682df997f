"""What a change to a workload means: validate, decide, write intent with
conditions, enqueue the job. Shared by the tenant routes and the operator's."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from infra.table.ports import PortTaken
from infra.table.repository import CreateReads, PortChange
from infra.table.workloads import allocations_attr
from services import operations
from services.deps import Deps
from shared import rules
from shared.allocations import Allocation, allocations_for, pick_ports
from shared.errors import (
    Conflict,
    CorralError,
    InvalidInput,
    NoHostAvailable,
    NotFound,
)
from shared.models import Cluster, Egg, Engine, Host, Operation, OperationParams, Workload
from shared.placement import allocated_range, candidates
from shared.requests import ContainerCreate, ContainerUpdate, LeaseRequest
from shared.states import (
    OperationKind,
    PowerSignal,
    WorkloadStatus,
    check_deletable,
    check_updatable,
    operation_in_flight,
    power_target,
)
from shared.variables import tenant_values

ATTEMPTS = 3
PORT_ATTEMPTS = 5


class WorkloadService:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._repo = deps.repo

    # -- reads ------------------------------------------------------------------

    def get(self, cluster_id: str, workload_id: str) -> Workload:
        return self._repo.workloads.get(cluster_id, workload_id)

    def live(self, cluster_id: str, workload_id: str) -> Workload:
        return _alive(self.get(cluster_id, workload_id))

    # -- create -------------------------------------------------------------------

    def create(
        self,
        cluster_id: str,
        body: ContainerCreate,
        constraints: Mapping[str, str] | None = None,
    ) -> tuple[Workload, Operation]:
        """Place a new workload and enqueue its provisioning. It is decided first on what
        this process read for a create in the last second, when it holds that
        (Repository.create_reads): whatever refuses it then, a rule or its
        transaction's conditions, is decided again on fresh reads, so that a refusal
        always stands on the table as it is."""
        first = self._repo.create_reads(cluster_id, body.egg_id)
        try:
            workload, operation = self._placed(cluster_id, body, constraints, first)
        except CorralError:
            if not first.held:
                raise
            self._repo.create_cache.forget(cluster_id, body.egg_id)
            fresh = self._repo.create_reads(cluster_id, body.egg_id, held=False)
            workload, operation = self._placed(cluster_id, body, constraints, fresh)
        operations.enqueue(self._deps.jobs, operation, workload)
        return workload, operation

    def _placed(
        self,
        cluster_id: str,
        body: ContainerCreate,
        constraints: Mapping[str, str] | None,
        first: CreateReads,
    ) -> tuple[Workload, Operation]:
        """The workload `body` asks for, written with its operation on the best host
        that takes it: decided on `first`, then on fresher reads when hosts refuse."""
        cluster, found_egg = first.cluster, first.egg
        rules.require_active(cluster)
        rules.require_egg_allowed(cluster, body.egg_id)
        egg = found_egg or rules.egg_or_not_allowed({}, body.egg_id)
        vm = rules.vm_request(egg, body.vm_given())
        environment = tenant_values(egg.variables, body.environment or {})
        resources = rules.resources_for_create(body.given(), egg)
        if vm is not None:
            resources = rules.vm_resources(resources, vm)
        image = egg.image if vm is not None else None
        refused: NoHostAvailable | None = None
        for attempt in range(ATTEMPTS):
            rules.require_room(cluster, resources, new_containers=1)
            # A sample of the summary first (a fixed number of its shards, read with the
            # cluster and the egg); a retry reads all of it, strongly consistent: the
            # sample may hold no host that fits (drawn among the occupied shards this
            # process knows: the retry tells it the shards occupied now), or a lagging
            # copy may be why the hosts it offered refused. An empty summary (just
            # upgraded: the host check enters each host) sends it to the hosts.
            sampled = attempt == 0
            summary = (
                first.hosts(self._repo.placement)
                if sampled
                else self._repo.placement.hosts(consistent=True) or self._repo.hosts.list()
            )
            try:
                hosts = candidates(summary, egg.engine, resources, constraints, image=image)
            except NoHostAvailable:
                if sampled:
                    continue
                raise
            now = self._deps.clock()
            expires_at = rules.expiry_for(now, cluster.plan, body.lifetime, body.expires_at)
            workload_id = self._deps.new_id()
            operation = operations.queued(
                self._deps.new_operation_id(),
                cluster.id,
                workload_id,
                OperationKind.PROVISION,
                OperationParams(),
                now,
            )
            for host in hosts[:ATTEMPTS]:
                unplaced = Workload(
                    id=workload_id,
                    cluster_id=cluster.id,
                    name=body.name,
                    egg_id=egg.id,
                    engine=egg.engine,
                    host_id=host.id,
                    resources=resources,
                    status=WorkloadStatus.PROVISIONING,
                    created_at=now,
                    updated_at=now,
                    pending_op=operation.id,
                    last_op=operation.id,
                    expires_at=expires_at,
                    restart_policy=body.restart_policy,
                    vm=vm,
                    environment=environment,
                )
                try:
                    workload = self._place(unplaced, operation, cluster, host, egg)
                except NoHostAvailable as exc:
                    refused = exc
                    continue  # that host filled up meanwhile: try the next best
                except Conflict:
                    break
                return workload, operation
            if attempt < ATTEMPTS - 1:
                cluster = self._repo.clusters.get(cluster_id)
                rules.require_active(cluster)
        if refused is not None:
            raise refused
        raise Conflict("The cluster or its hosts kept changing; retry.")

    def _place(
        self, workload: Workload, operation: Operation, cluster: Cluster, host: Host, egg: Egg
    ) -> Workload:
        """Write `workload` on `host` with its allocations: ports nobody holds, drawn
        at random; when a racing placement took one of them first, draw again."""
        port_range = allocated_range(host)
        count = workload.resources.ports if port_range is not None else 0
        for _ in range(PORT_ATTEMPTS):
            ports: list[int] = []
            if port_range is not None and count:
                held = self._repo.ports.held(host.id)
                ports = pick_ports(port_range, held, count, host.name)
            allocations = allocations_for(host.reached_at, ports, egg.container_ports)
            placed = replace(workload, allocations=allocations)
            try:
                self._repo.create_workload(placed, operation, cluster, host)
            except PortTaken:
                continue
            return placed
        raise Conflict("The host's ports kept being taken by other containers; retry.")

    # -- changes ------------------------------------------------------------------

    def update(
        self, cluster_id: str, workload_id: str, body: ContainerUpdate
    ) -> tuple[Workload, Operation]:
        if body.is_empty():
            raise InvalidInput(
                "Nothing to change: give name, egg_id, resources and/or environment."
            )
        workload, cluster = self._idle(cluster_id, workload_id)
        check_updatable(workload.status)
        rules.require_active(cluster)
        new_egg_id = body.egg_id if body.egg_id not in (None, workload.egg_id) else None
        given = body.resources.given() if body.resources else {}
        asked = workload.resources.merged(given)
        resources = rules.vm_resources(asked, workload.vm) if workload.vm is not None else asked
        resized = resources != workload.resources
        reallocate = workload.engine == Engine.DOCKER and (
            resources.ports != workload.resources.ports or new_egg_id is not None
        )
        if new_egg_id is not None:
            rules.require_egg_allowed(cluster, new_egg_id)
        # The egg it runs, the one it switches to and the host it grows on or takes
        # ports from, in one round trip.
        eggs, host = self._repo.eggs_and_host(
            [workload.egg_id, *([new_egg_id] if new_egg_id is not None else [])],
            workload.host_id if resized or reallocate else None,
        )
        egg: Egg | None = eggs.get(workload.egg_id)  # None once the operator deleted it
        fields: dict[str, Any] = {}
        params = OperationParams()
        if body.name is not None and body.name != workload.name:
            fields["name"] = body.name
            params = replace(params, name=body.name)
        if new_egg_id is not None:
            egg = eggs.get(new_egg_id) or rules.egg_or_not_allowed({}, new_egg_id)
            if egg.engine != workload.engine:
                raise InvalidInput(
                    f"Egg {egg.name} runs on {egg.engine.value}; this container runs on "
                    f"{workload.engine.value}. Create a new container instead."
                )
            fields["egg_id"] = egg.id
            params = replace(params, egg_id=egg.id, recreate=True)
        if body.environment or "egg_id" in fields:
            if egg is None:
                raise InvalidInput("The container's egg was deleted: its variables are gone.")
            values = tenant_values(egg.variables, body.environment or {}, workload.environment)
            if values != workload.environment:
                fields["environment"] = values
                params = replace(params, environment=values, recreate=True)
        if given or "egg_id" in fields:
            rules.check_minimums(asked, egg)
        if workload.engine == Engine.QEMU and resources.storage_mb < workload.resources.storage_mb:
            raise InvalidInput("A VM's disk cannot shrink; give storage_mb at least as large.")
        if resources.databases < workload.database_count:
            raise InvalidInput(
                f"The container holds {workload.database_count} databases: its databases "
                "allocation cannot go below that; delete some first."
            )
        if resources.backups < workload.backup_count:
            raise InvalidInput(
                f"The container holds {workload.backup_count} backups; delete some before "
                f"giving it fewer than {workload.backup_count} backups."
            )
        if resized:
            params = replace(params, resources=resources)
            rules.require_room(cluster, resources - workload.resources)
        if not fields and not resized:
            raise InvalidInput("Nothing to change: the values given are the current ones.")
        if resources.ports != workload.resources.ports and reallocate:
            params = replace(params, recreate=True)  # new ports are published on a new container
        operation = self._operation(workload, OperationKind.UPDATE, params)
        allocations = workload.allocations
        for attempt in range(PORT_ATTEMPTS):
            if attempt and host is not None:  # a racing placement took a port: read again
                host = self._repo.hosts.get(workload.host_id)
            change = None
            if host is not None and reallocate:
                allocations, change = self._reallocate(workload, host, resources.ports, egg)
                fields["allocations"] = allocations_attr(allocations)
            try:
                self._repo.begin_operation(
                    workload,
                    operation,
                    set_fields=fields,
                    resources=resources if resized else None,
                    cluster=cluster,
                    host=host,
                    ports=change,
                )
            except PortTaken:
                continue
            break
        else:
            raise Conflict("The host's ports kept being taken by other containers; retry.")
        operations.enqueue(self._deps.jobs, operation)
        changed = replace(
            workload,
            resources=resources,
            allocations=allocations,
            pending_op=operation.id,
            last_op=operation.id,
        )
        if "name" in fields:
            changed = replace(changed, name=fields["name"])
        if "egg_id" in fields:
            changed = replace(changed, egg_id=fields["egg_id"])
        if "environment" in fields:
            changed = replace(changed, environment=fields["environment"])
        return changed, operation

    def power(
        self, cluster_id: str, workload_id: str, signal: PowerSignal
    ) -> tuple[Workload, Operation]:
        workload, cluster = self._idle(cluster_id, workload_id)
        rules.require_active(cluster)
        target = power_target(signal, workload.status)
        params = OperationParams(signal=signal, target=target)
        operation = self._operation(workload, OperationKind.POWER, params)
        self._repo.begin_operation(workload, operation)
        operations.enqueue(self._deps.jobs, operation, workload)
        return replace(workload, pending_op=operation.id, last_op=operation.id), operation

    def delete(self, cluster_id: str, workload_id: str) -> tuple[Workload, Operation]:
        workload, cluster = self._idle(cluster_id, workload_id)
        rules.require_active(cluster)
        check_deletable(workload.status)
        params = OperationParams(previous=workload.status)
        operation = self._operation(workload, OperationKind.DELETE, params)
        self._repo.begin_operation(
            workload, operation, set_fields={"status": WorkloadStatus.DELETING.value}
        )
        operations.enqueue(self._deps.jobs, operation, workload)
        changed = replace(
            workload, status=WorkloadStatus.DELETING, pending_op=operation.id, last_op=operation.id
        )
        return changed, operation

    def lease(self, cluster_id: str, workload_id: str, body: LeaseRequest) -> Workload:
        """Renew (or shorten) the lease: a table write, no job."""
        workload = self.live(cluster_id, workload_id)
        cluster = self._repo.clusters.get(cluster_id)
        now = self._deps.clock()
        expires_at = rules.expiry_for(now, cluster.plan, body.lifetime, body.expires_at)
        assert expires_at is not None  # LeaseRequest demands one of the two
        return self._repo.workloads.set_lease(workload, expires_at, now)

    # -- helpers ------------------------------------------------------------------

    def _reallocate(
        self, workload: Workload, host: Host, count: int, egg: Egg | None
    ) -> tuple[tuple[Allocation, ...], PortChange]:
        """The allocations after a resize of `ports` to `count` (the first ones kept, the
        primary among them; new ones drawn among the free ones; the last ones given back)
        or a switch of egg (its `container_ports` mapped anew)."""
        current = [a.port for a in workload.allocations]
        kept, freed = current[:count], current[count:]
        taken: list[int] = []
        port_range = allocated_range(host)
        if count > len(current) and port_range is not None:
            held = self._repo.ports.held(host.id)
            taken = pick_ports(port_range, held, count - len(current), host.name)
        container_ports = egg.container_ports if egg is not None else ()
        allocations = allocations_for(host.reached_at, kept + taken, container_ports)
        return allocations, PortChange(taken=tuple(taken), freed=tuple(freed))

    def _idle(self, cluster_id: str, workload_id: str) -> tuple[Workload, Cluster]:
        """A live workload with no operation in flight, and its cluster (as the table
        has it now: a principal cached before a suspension must not pass), read in one
        round trip."""
        workload, cluster = self._repo.change_reads(cluster_id, workload_id)
        _alive(workload)
        if workload.pending_op:
            raise operation_in_flight(workload.pending_op)
        return workload, cluster

    def _operation(
        self, workload: Workload, kind: OperationKind, params: OperationParams
    ) -> Operation:
        return operations.queued(
            self._deps.new_operation_id(),
            workload.cluster_id,
            workload.id,
            kind,
            params,
            self._deps.clock(),
        )


def _alive(workload: Workload) -> Workload:
    """The workload, unless it is gone (deleted or expired): NotFound."""
    if workload.status.is_gone:
        raise NotFound(f"Container is {workload.status.value}.")
    return workload

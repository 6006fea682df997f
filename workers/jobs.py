"""The job that carries out one operation: read it from the table, converge the
host, record the outcome. Safe to run twice, or again after a crash halfway:
each step checks what is already true, and the outcome is written under the
condition that the operation is still the workload's pending one."""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from rq import get_current_job

from infra import metrics
from infra.archives.store import StoredArchive
from infra.drivers.base import HostDriver, ImagePuller, VmDriver
from infra.queue import EGG_ID_META, HOST_ID_META, WORKLOAD_ID_META
from infra.table.repository import JobRecords
from shared.backups import BackupRefused
from shared.capacity import Resources
from shared.deadline import JobTimedOut, passed
from shared.environment import container_environment
from shared.errors import IMAGE_MISSING, Failure, HostError
from shared.models import Egg, Engine, Operation, OperationReason, Workload
from shared.runtime import (
    LABEL_CONFIG,
    LABEL_EGG,
    LABEL_PORTS,
    Observed,
    RuntimeState,
    WorkloadSpec,
    published_ports,
)
from shared.states import BACKUP_KINDS, OperationKind, PowerSignal, WorkloadStatus
from shared.vm import WorkloadVm, vm_options
from workers import backups, context, images, locks
from workers.databases import connections, drop_owned
from workers.databases import converge as databases_converge

log = logging.getLogger("corral.jobs")

LOST_MESSAGE = "The container disappeared from its host."


def plain_error(code: str, message: str) -> HostError:
    """A failure whose message is plain words for the tenant, with nothing of the host."""
    return HostError(message, code=code, public=message)


_RUNNING_STATES = {
    RuntimeState.RUNNING: WorkloadStatus.RUNNING,
    RuntimeState.PAUSED: WorkloadStatus.PAUSED,
}


@dataclass(frozen=True)
class Outcome:
    status: WorkloadStatus
    fields: dict[str, Any] = field(default_factory=dict)
    release: bool = False
    host_exists: bool = True
    archive: StoredArchive | None = None  # a backup's, once stored


def spec_for(
    workload: Workload,
    egg: Egg,
    resources: Resources | None = None,
    databases: Sequence[Mapping[str, str]] = (),
) -> WorkloadSpec:
    return WorkloadSpec(
        workload_id=workload.id,
        cluster_id=workload.cluster_id,
        egg_id=egg.id,
        image=egg.image,
        resources=resources or workload.resources,
        command=egg.command,
        environment=container_environment(egg, workload, databases),
        stop_timeout=egg.stop_timeout,
        name=workload.name,
        allocations=workload.allocations,
        data_path=egg.data_path,
        restart_policy=workload.restart_policy.value,
    )


def _enforced(observed: Observed) -> dict[str, Any]:
    return {"enforced": dict(observed.enforced)} if observed.enforced else {}


def _ensure(
    driver: HostDriver, workload: Workload, egg: Egg, spec: WorkloadSpec, op: Operation
) -> Observed:
    """`driver.ensure`, the image pulled first (with progress on the operation) when the
    host answers it does not have it, or with the VM options when the workload is a VM.
    The image is pulled only then: a host that has it is not asked twice."""
    if workload.engine != Engine.QEMU:
        if not isinstance(driver, ImagePuller):
            return driver.ensure(spec)
        try:
            return driver.ensure(spec)
        except HostError as exc:
            if exc.code != IMAGE_MISSING:
                raise
        driver.pull_if_missing(spec.image, images.registry_auth(egg), images.ProgressReport(op))
        return driver.ensure(spec)
    try:
        options = vm_options(egg.vm, workload.vm)
    except ValueError as exc:
        raise plain_error("vm_options", f"The VM's options are unusable: {exc}.") from exc
    return _vm_driver(driver).ensure(spec, vm=options)


def _vm_driver(driver: HostDriver) -> VmDriver:
    if not isinstance(driver, VmDriver):
        raise HostError(
            f"host {driver!r} is not a VM driver: register the VM's host with driver ssh",
            code="host_not_vm",
            public="The VM's host does not run VMs.",
        )
    return driver


def _vm_fields(driver: HostDriver, workload: Workload, made_from: Egg | None) -> dict[str, Any]:
    """What the host says of a VM: whether new memory or vCPUs wait for a restart and,
    once it was (re)made from egg `made_from`, its image and where it answers (the
    host's address and its forwarded ports)."""
    if workload.engine != Engine.QEMU:
        return {}
    vm_driver = _vm_driver(driver)
    fields: dict[str, Any] = {"restart_needed": vm_driver.restart_needed(workload.id)}
    if made_from is not None:
        made = replace(
            workload.vm or WorkloadVm(),
            image=made_from.image,
            address=vm_driver.address,
            forwarded_ports=vm_driver.forwarded_ports(workload.id),
        )
        fields["vm"] = made.to_json()
    return fields


def _spec(workload: Workload, egg: Egg) -> WorkloadSpec:
    """The spec of a container made now: with the connection variables of the
    databases bound to it."""
    return spec_for(workload, egg, databases=connections(context.current(), workload))


def provision(driver: HostDriver, workload: Workload, egg: Egg, op: Operation) -> Outcome:
    observed = _ensure(driver, workload, egg, _spec(workload, egg), op)
    driver.power(workload.id, PowerSignal.START, egg.stop_timeout)
    fields = _enforced(observed) | _vm_fields(driver, workload, egg)
    return Outcome(WorkloadStatus.RUNNING, fields)


def update(driver: HostDriver, workload: Workload, egg: Egg, op: Operation) -> Outcome:
    """Rename, resize, switch egg and/or change variables. The table already holds the
    new values; the host is brought to them. An egg switch or new variables recreate
    the container (unless a previous run did already) and bring it back to the power
    state it had."""
    spec = _spec(workload, egg)
    if op.params.recreate:
        before = driver.inspect(workload.id)
        made = before.labels.get(LABEL_CONFIG)
        if (
            before.state != RuntimeState.MISSING
            and made == spec.config_digest
            and _same_container(before, spec)
        ):
            observed = driver.apply_resources(spec)
        else:
            driver.remove(workload.id, keep_data=True)
            observed = _ensure(driver, workload, egg, spec, op)
        observed = _restore_power(driver, workload, egg, observed)
    elif op.params.resources is not None:
        observed = driver.apply_resources(spec)
    else:
        return Outcome(workload.status)
    remade = egg if op.params.recreate else None
    fields = _enforced(observed) | _vm_fields(driver, workload, remade)
    return Outcome(_status_of(observed, workload.status), fields)


def _same_container(observed: Observed, spec: WorkloadSpec) -> bool:
    """Whether the container on the host is already made from the spec's egg with its
    published ports (a re-run of an update that recreated it)."""
    labels = observed.labels
    return labels.get(LABEL_EGG) == spec.egg_id and labels.get(LABEL_PORTS, "") == (
        published_ports(spec.allocations)
    )


def _restore_power(
    driver: HostDriver, workload: Workload, egg: Egg, observed: Observed
) -> Observed:
    """`observed` (what the host said of the workload) once brought back to the power
    state it had; of a power signal, only the state it reached is kept (a driver may
    tell nothing else)."""
    if workload.status in (WorkloadStatus.RUNNING, WorkloadStatus.PAUSED):
        observed = replace(observed, state=_power_state(driver, workload, egg, PowerSignal.START))
    if workload.status == WorkloadStatus.PAUSED:
        observed = replace(observed, state=_power_state(driver, workload, egg, PowerSignal.PAUSE))
    return observed


def _power_state(
    driver: HostDriver, workload: Workload, egg: Egg, signal: PowerSignal
) -> RuntimeState:
    return driver.power(workload.id, signal, egg.stop_timeout).state


def _status_of(observed: Observed, fallback: WorkloadStatus) -> WorkloadStatus:
    if observed.state == RuntimeState.STOPPED:
        return WorkloadStatus.STOPPED
    return _RUNNING_STATES.get(observed.state, fallback)


def power(driver: HostDriver, workload: Workload, egg: Egg, op: Operation) -> Outcome:
    signal = op.params.signal
    target = op.params.target
    if signal is None or target is None:
        raise ValueError(f"power operation {op.id} has no signal and target")
    driver.power(workload.id, signal, egg.stop_timeout)  # HostError "missing" if it is
    return Outcome(target, _vm_fields(driver, workload, None))


def delete(driver: HostDriver, workload: Workload, egg: Egg, op: Operation) -> Outcome:
    driver.remove(workload.id)
    return Outcome(gone_status(op), release=True)


def backup(driver: HostDriver, workload: Workload, egg: Egg, op: Operation) -> Outcome:
    archive = backups.take(context.current(), driver, workload, op)
    return Outcome(workload.status, archive=archive)


def restore(driver: HostDriver, workload: Workload, egg: Egg, op: Operation) -> Outcome:
    """Replace the data path's contents with a backup's, the workload stopped around
    it, and bring it back to the power state it had."""
    backups.restore(context.current(), driver, workload, op, egg.stop_timeout)
    observed = _restore_power(driver, workload, egg, driver.inspect(workload.id))
    return Outcome(workload.status, _enforced(observed) | _vm_fields(driver, workload, None))


def delete_backup(
    driver: HostDriver | None, workload: Workload, egg: Egg | None, op: Operation
) -> Outcome:
    backups.delete(context.current(), op)
    return Outcome(workload.status)


def observe(driver: HostDriver, workload: Workload, egg: Egg, op: Operation) -> Outcome:
    """A repair or an adoption the reconciler began but did not finish (it died, and
    re-queued the operation later): record what the host says now."""
    observed = driver.inspect(workload.id)
    if observed.state == RuntimeState.MISSING:
        raise plain_error("lost", LOST_MESSAGE)
    return Outcome(_status_of(observed, workload.status), _enforced(observed))


def gone_status(op: Operation) -> WorkloadStatus:
    """A reaped workload ends `expired`; a deleted one `deleted`."""
    expired = op.params.reason == OperationReason.EXPIRED
    return WorkloadStatus.EXPIRED if expired else WorkloadStatus.DELETED


# (driver, workload, egg, operation): the driver is None for the kinds in HOSTLESS.
Executor = Callable[[Any, Workload, Any, Operation], Outcome]

EXECUTORS: dict[OperationKind, Executor] = {
    OperationKind.PROVISION: provision,
    OperationKind.UPDATE: update,
    OperationKind.POWER: power,
    OperationKind.DELETE: delete,
    OperationKind.REPAIR: observe,
    OperationKind.ADOPT: observe,
    OperationKind.BACKUP: backup,
    OperationKind.RESTORE: restore,
    OperationKind.DELETE_BACKUP: delete_backup,
}
# What needs no host: a backup's archive is in the backup store.
HOSTLESS: frozenset[OperationKind] = frozenset({OperationKind.DELETE_BACKUP})


def run_operation(cluster_id: str, operation_id: str) -> str:
    """RQ entry point. Returns the operation's final status."""
    ctx = context.current()
    repo = ctx.repo
    # Jobs carry their workload's id, and its host's and egg's when their enqueuer had
    # them (infra.queue): what the job needs is read at once. Without the workload's (a
    # job of an older release), the operation first.
    meta = _job_meta()
    workload_id = meta.get(WORKLOAD_ID_META)
    host_id, egg_id = meta.get(HOST_ID_META), meta.get(EGG_ID_META)
    host_and_egg = (host_id, egg_id) if host_id and egg_id else None
    read = repo.job_records(cluster_id, operation_id, workload_id, host_and_egg)
    op = read.operation
    if op is None:
        log.warning("operation %s not in the table; nothing to do", operation_id)
        return "missing"
    if op.status.is_finished:
        return op.status.value
    if op.kind.is_fleet:
        return images.run_image_operation(ctx, op, retries_left=_retries_left())
    with locks.workload_job(ctx.jobs.redis, op.workload_id, op.id) as waited:
        if waited or workload_id is None:  # read what is true now, the workload too
            read = repo.job_records(cluster_id, operation_id, op.workload_id)
            op = read.operation
            if op is None:
                return "missing"
            if op.status.is_finished:
                return op.status.value
        return _run_on_workload(ctx, op, read)


def _run_on_workload(ctx: context.WorkerContext, op: Operation, read: JobRecords) -> str:
    """The operation of one workload (`read.workload`; None: not in the table), its
    lock held."""
    repo = ctx.repo
    workload = read.workload
    if workload is None:
        gone = Failure("container_gone", "The container no longer exists.")
        repo.operations.fail_orphan(op, gone, ctx.clock())
        return "failed"
    if workload.pending_op != op.id:
        superseded = Failure("superseded", "Superseded: the container is not waiting for it.")
        repo.operations.fail_orphan(op, superseded, ctx.clock())
        return "failed"
    marking = _marking_running(ctx, op)
    try:
        outcome = _execute(ctx, workload, op, read)
    except JobTimedOut:
        return _record_timed_out(ctx, marking.result(), workload)
    except Exception as exc:
        op = marking.result()
        if passed():  # a host call cut short by the job's deadline
            return _record_timed_out(ctx, op, workload)
        return _record_error(ctx, op, workload, exc)
    return _record(ctx, marking.result(), workload, outcome, None)


_marking_pool: ThreadPoolExecutor | None = None
_marking_pool_made = threading.Lock()


def _marking_running(ctx: context.WorkerContext, op: Operation) -> Future[Operation]:
    """Mark `op` running in a thread of its own while the job goes to the host: the
    table's write and the host's call overlap instead of adding up. The job takes the
    result before it records the outcome, so the operation is running before it ends
    (and its `running` event comes before its outcome's); a Conflict (it finished
    meanwhile) is raised there, once the host call is back, as it would have been before
    it. Only a progress text written before the mark lands is lost (its write requires
    a running operation), as one of a finished operation is."""
    global _marking_pool
    with _marking_pool_made:
        if _marking_pool is None:
            _marking_pool = ThreadPoolExecutor(thread_name_prefix="corral-mark")
    mark = contextvars.copy_context().run  # the job's log ids go with it
    return _marking_pool.submit(mark, ctx.repo.operations.mark_running, op, ctx.clock())


def _record_timed_out(ctx: context.WorkerContext, op: Operation, workload: Workload) -> str:
    """Stopped past the job's timeout: a hang would hang again, so no retry; the workload
    takes its next change (a retry, a delete) from here."""
    log.warning("operation %s: stopped past its job timeout", op.id)
    timed_out = Failure(
        "timed_out",
        "The host did not finish the operation in time. The operator has the details.",
        "the worker stopped the job past its timeout (CORRAL_JOB_TIMEOUT_SECONDS)",
    )
    return _record(ctx, op, workload, _failed(op, workload), timed_out)


def _record_error(
    ctx: context.WorkerContext, op: Operation, workload: Workload, exc: Exception
) -> str:
    """The job's failure recorded, or raised again for rq to retry while retries are left
    (for a host error, only a transient one)."""
    retry = _retries_left() > 0 and (not isinstance(exc, HostError) or exc.transient)
    if retry:
        log.info("operation %s: will retry: %s", op.id, exc)
        raise exc
    if isinstance(exc, HostError):
        log.warning("operation %s failed on the host: %s", op.id, exc)
        return _record(ctx, op, workload, _failed(op, workload, exc), exc.failure())
    log.error("operation %s failed", op.id, exc_info=exc)
    internal = Failure(
        "internal_error",
        "Corral failed to carry out the operation. The operator has the details.",
        f"{type(exc).__name__}: {exc}",
    )
    return _record(ctx, op, workload, _failed(op, workload), internal)


def _failed(op: Operation, workload: Workload, exc: BaseException | None = None) -> Outcome:
    """What a failed operation leaves: the workload in error, unless the operation never
    touches it (a backup, a backup's deletion) or was refused before it did."""
    untouched = op.kind in (OperationKind.BACKUP, OperationKind.DELETE_BACKUP)
    if untouched or isinstance(exc, BackupRefused):
        return Outcome(workload.status)
    return Outcome(WorkloadStatus.ERROR)


def _execute(
    ctx: context.WorkerContext, workload: Workload, op: Operation, read: JobRecords
) -> Outcome:
    outcome = _execute_on_host(ctx, workload, op, read)
    if op.kind == OperationKind.DELETE:
        backups.discard_all(ctx, workload)
        drop_owned(ctx, workload)
    return outcome


def _execute_on_host(
    ctx: context.WorkerContext, workload: Workload, op: Operation, read: JobRecords
) -> Outcome:
    if op.kind in HOSTLESS:
        return EXECUTORS[op.kind](None, workload, None, op)
    host, found_egg = read.host_and_egg_of(workload) or ctx.repo.host_and_egg(
        workload.host_id, workload.egg_id
    )
    if host is None:
        if op.kind == OperationKind.DELETE:  # the host was force-removed: nothing to clean
            return Outcome(gone_status(op), release=True, host_exists=False)
        raise plain_error("host_removed", "The container's host was removed from Corral.")
    egg = found_egg or _deleted_egg(workload, op)
    driver = ctx.drivers.for_host(host)
    if op.params.database_id:  # a tenant database first: made, rotated or dropped
        databases_converge(ctx, workload.cluster_id, op.params.database_id)
    return EXECUTORS[op.kind](driver, workload, egg, op)


def _deleted_egg(workload: Workload, op: Operation) -> Egg:
    """What is left of an egg the operator deleted: enough to power, resize, rename or
    delete the workload that runs it, not to create one from it."""
    if op.kind == OperationKind.PROVISION or op.params.recreate:
        raise plain_error("egg_deleted", f"Egg {workload.egg_id} no longer exists.")
    return Egg(
        id=workload.egg_id,
        name="(deleted)",
        engine=workload.engine,
        image="",
        command=None,
        environment={},
        minimum=Resources(),
        defaults=Resources(),
        stop_timeout=10,
        created_at=workload.created_at,
    )


def _record(
    ctx: context.WorkerContext,
    op: Operation,
    workload: Workload,
    outcome: Outcome,
    error: Failure | None,
) -> str:
    status = outcome.status
    if error and op.kind == OperationKind.DELETE:
        status = WorkloadStatus.ERROR
    also, slots_freed = (
        backups.closing(ctx, op, outcome.archive, error) if op.kind in BACKUP_KINDS else ((), 0)
    )
    finished = ctx.repo.finish_operation(
        op,
        workload,
        status=status,
        error=error,
        now=ctx.clock(),
        workload_fields=outcome.fields,
        release=outcome.release and error is None,
        host_exists=outcome.host_exists,
        also=also,
        backup_slots_freed=slots_freed,
    )
    final = "failed" if error else "succeeded"
    if finished:
        ctx.jobs.notify_finished(op.id, final)
        metrics.observe_operation(
            op.kind.value, final, (ctx.clock() - op.created_at).total_seconds()
        )
        log.info("operation %s %s %s", op.kind.value, op.id, final,
                 extra={"kind": op.kind.value, "outcome": final})  # fmt: skip
    return final


def _job_meta() -> dict[str, str]:
    job = get_current_job()
    return dict(job.meta or {}) if job is not None else {}


def _retries_left() -> int:
    job = get_current_job()
    return int(job.retries_left or 0) if job is not None else 0

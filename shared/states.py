"""The workload state machine and the vocabulary of operations."""

from __future__ import annotations

from enum import StrEnum

from shared.errors import ActionNotAllowed


class WorkloadStatus(StrEnum):
    PROVISIONING = "provisioning"
    RUNNING = "running"
    STOPPED = "stopped"
    PAUSED = "paused"
    DELETING = "deleting"
    DELETED = "deleted"
    EXPIRED = "expired"
    ERROR = "error"

    @property
    def is_gone(self) -> bool:
        return self in (WorkloadStatus.DELETED, WorkloadStatus.EXPIRED)


class PowerSignal(StrEnum):
    START = "start"
    STOP = "stop"
    RESTART = "restart"
    KILL = "kill"
    PAUSE = "pause"
    RESUME = "resume"


class OperationKind(StrEnum):
    PROVISION = "provision"
    UPDATE = "update"
    POWER = "power"
    DELETE = "delete"
    REPAIR = "repair"  # the reconciler found the host disagreeing with the table
    ADOPT = "adopt"  # the reconciler took back a workload the table did not know
    BACKUP = "backup"  # archive the data path into the backup store
    RESTORE = "restore"  # replace the data path's contents with a backup's
    DELETE_BACKUP = "delete_backup"  # remove a backup's archive and record
    IMAGE_PULL = "image_pull"  # an operator's pre-pull of an image on one host
    IMAGE_DELETE = "image_delete"  # an operator's removal of an image from one host

    @property
    def is_fleet(self) -> bool:
        """An operator's operation on a host, not on a workload (see FLEET_OPERATIONS)."""
        return self in (OperationKind.IMAGE_PULL, OperationKind.IMAGE_DELETE)


# Operations on a workload's backups: they leave the workload's status as it was.
BACKUP_KINDS = frozenset({OperationKind.BACKUP, OperationKind.RESTORE, OperationKind.DELETE_BACKUP})


class OperationStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def is_finished(self) -> bool:
        return self in (OperationStatus.SUCCEEDED, OperationStatus.FAILED)


_S = WorkloadStatus
_P = PowerSignal

# signal -> (statuses it may be sent from, status once it succeeded)
POWER_TRANSITIONS: dict[PowerSignal, tuple[frozenset[WorkloadStatus], WorkloadStatus]] = {
    _P.START: (frozenset({_S.STOPPED, _S.ERROR}), _S.RUNNING),
    _P.STOP: (frozenset({_S.RUNNING, _S.PAUSED}), _S.STOPPED),
    _P.RESTART: (frozenset({_S.RUNNING, _S.STOPPED}), _S.RUNNING),
    _P.KILL: (frozenset({_S.RUNNING, _S.PAUSED}), _S.STOPPED),
    _P.PAUSE: (frozenset({_S.RUNNING}), _S.PAUSED),
    _P.RESUME: (frozenset({_S.PAUSED}), _S.RUNNING),
}

# Statuses a container may be backed up or restored from.
BACKUPABLE: frozenset[WorkloadStatus] = frozenset({_S.RUNNING, _S.STOPPED, _S.PAUSED})

# Statuses from which a configuration change (rename, resize, egg switch) may start.
UPDATABLE: frozenset[WorkloadStatus] = frozenset({_S.RUNNING, _S.STOPPED, _S.PAUSED, _S.ERROR})
DELETABLE: frozenset[WorkloadStatus] = frozenset(
    {_S.PROVISIONING, _S.RUNNING, _S.STOPPED, _S.PAUSED, _S.ERROR}
)


def _refuse(action: str, status: WorkloadStatus, allowed: frozenset[WorkloadStatus]) -> None:
    choices = ", ".join(sorted(s.value for s in allowed))
    raise ActionNotAllowed(
        f"Cannot {action} a container that is {status.value}; allowed from: {choices}."
    )


def power_target(signal: PowerSignal, status: WorkloadStatus) -> WorkloadStatus:
    """The status `signal` leads to from `status`, or ActionNotAllowed."""
    allowed, target = POWER_TRANSITIONS[signal]
    if status not in allowed:
        _refuse(signal.value, status, allowed)
    return target


def check_updatable(status: WorkloadStatus) -> None:
    if status not in UPDATABLE:
        _refuse("update", status, UPDATABLE)


def check_backupable(action: str, status: WorkloadStatus) -> None:
    if status not in BACKUPABLE:
        _refuse(action, status, BACKUPABLE)


def check_deletable(status: WorkloadStatus) -> None:
    if status not in DELETABLE:
        _refuse("delete", status, DELETABLE)


def operation_in_flight(operation_id: str) -> ActionNotAllowed:
    return ActionNotAllowed(
        f"Container has an operation in flight ({operation_id}); wait for it to finish."
    )

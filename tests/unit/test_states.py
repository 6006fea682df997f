"""The workload state machine: every signal from every status, updates and deletes."""

from __future__ import annotations

import itertools

import pytest

from shared.errors import ActionNotAllowed
from shared.states import (
    OperationStatus,
    PowerSignal,
    WorkloadStatus,
    check_deletable,
    check_updatable,
    power_target,
)

S = WorkloadStatus
P = PowerSignal

# Written out independently of shared/states.py: (signal, from) -> to.
EXPECTED: dict[tuple[PowerSignal, WorkloadStatus], WorkloadStatus] = {
    (P.START, S.STOPPED): S.RUNNING,
    (P.START, S.ERROR): S.RUNNING,
    (P.STOP, S.RUNNING): S.STOPPED,
    (P.STOP, S.PAUSED): S.STOPPED,
    (P.RESTART, S.RUNNING): S.RUNNING,
    (P.RESTART, S.STOPPED): S.RUNNING,
    (P.KILL, S.RUNNING): S.STOPPED,
    (P.KILL, S.PAUSED): S.STOPPED,
    (P.PAUSE, S.RUNNING): S.PAUSED,
    (P.RESUME, S.PAUSED): S.RUNNING,
}


@pytest.mark.parametrize(
    ("signal", "status"),
    list(itertools.product(PowerSignal, WorkloadStatus)),
    ids=lambda v: v.value,
)
def test_every_signal_from_every_status(signal: PowerSignal, status: WorkloadStatus) -> None:
    expected = EXPECTED.get((signal, status))
    if expected is not None:
        assert power_target(signal, status) == expected
    else:
        with pytest.raises(ActionNotAllowed) as refused:
            power_target(signal, status)
        assert refused.value.code == "action_not_allowed"
        assert refused.value.status == 409
        assert f"Cannot {signal.value} a container that is {status.value}" in str(refused.value)


def test_refusals_name_the_statuses_that_would_allow_it() -> None:
    with pytest.raises(ActionNotAllowed) as refused:
        power_target(P.STOP, S.STOPPED)
    assert refused.value.message.endswith("allowed from: paused, running.")


@pytest.mark.parametrize("status", list(WorkloadStatus), ids=lambda s: s.value)
def test_no_signal_reaches_a_container_in_transit_or_gone(status: WorkloadStatus) -> None:
    if status not in (S.PROVISIONING, S.DELETING, S.DELETED, S.EXPIRED):
        return
    for signal in PowerSignal:
        with pytest.raises(ActionNotAllowed):
            power_target(signal, status)


@pytest.mark.parametrize("status", list(WorkloadStatus), ids=lambda s: s.value)
def test_updatable_statuses(status: WorkloadStatus) -> None:
    if status in (S.RUNNING, S.STOPPED, S.PAUSED, S.ERROR):
        check_updatable(status)
    else:
        with pytest.raises(ActionNotAllowed, match=f"Cannot update a container that is {status}"):
            check_updatable(status)


@pytest.mark.parametrize("status", list(WorkloadStatus), ids=lambda s: s.value)
def test_deletable_statuses(status: WorkloadStatus) -> None:
    if status in (S.PROVISIONING, S.RUNNING, S.STOPPED, S.PAUSED, S.ERROR):
        check_deletable(status)
    else:
        with pytest.raises(ActionNotAllowed, match=f"Cannot delete a container that is {status}"):
            check_deletable(status)


def test_gone_statuses() -> None:
    assert {s for s in WorkloadStatus if s.is_gone} == {S.DELETED, S.EXPIRED}


def test_finished_operation_statuses() -> None:
    finished = {s for s in OperationStatus if s.is_finished}
    assert finished == {OperationStatus.SUCCEEDED, OperationStatus.FAILED}


def test_signal_vocabulary_is_the_contracts_plus_pause_and_resume() -> None:
    assert [s.value for s in PowerSignal] == ["start", "stop", "restart", "kill", "pause", "resume"]

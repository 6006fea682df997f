"""Every kind of operation has a path through the job runner (issue 12, defect 4: a
re-queued repair failed with KeyError)."""

from __future__ import annotations

from shared.states import OperationKind
from workers.jobs import EXECUTORS


def test_every_operation_kind_has_an_executor() -> None:
    # Operators' operations on hosts (image pulls and deletes) have one of their own,
    # workers.images.run_image_operation; every other kind is a workload's.
    for kind in OperationKind:
        assert (kind in EXECUTORS) != kind.is_fleet, kind
    assert {k for k in OperationKind if k.is_fleet} == {
        OperationKind.IMAGE_PULL,
        OperationKind.IMAGE_DELETE,
    }

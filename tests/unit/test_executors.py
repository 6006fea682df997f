"""Every kind of operation has a path through the job runner (issue 12, defect 4: a
re-queued repair failed with KeyError)."""

from __future__ import annotations

from shared.states import OperationKind
from workers.jobs import EXECUTORS


def test_every_operation_kind_has_an_executor() -> None:
    for kind in OperationKind:
        assert kind in EXECUTORS, kind

"""The protocol every host driver implements.

Every method is idempotent: calling it twice, or after a crash halfway, converges
to the same end state. Library errors are re-raised as `shared.errors.HostError`
(`transient=True` when a retry may succeed: timeouts, connection refused, 5xx).
"""

from __future__ import annotations

from typing import Protocol

from shared.runtime import HostInfo, Observed, WorkloadSpec
from shared.states import PowerSignal


class HostDriver(Protocol):
    def ensure(self, spec: WorkloadSpec) -> Observed:
        """Create the workload if it does not exist (never a second one), with the
        spec's image, limits and labels. Does not start it."""
        ...

    def apply_resources(self, spec: WorkloadSpec) -> Observed:
        """Change the limits of the existing workload in place where the engine can."""
        ...

    def power(self, workload_id: str, signal: PowerSignal, stop_timeout: int = 10) -> Observed:
        """Send a power signal. Reaching the target state already is success."""
        ...

    def remove(self, workload_id: str) -> None:
        """Destroy the workload and what belongs to it. Missing is success."""
        ...

    def inspect(self, workload_id: str) -> Observed:
        """The workload's state; RuntimeState.MISSING when the host has none."""
        ...

    def list_managed(self) -> list[Observed]:
        """Every workload on the host that carries Corral's labels."""
        ...

    def probe(self) -> HostInfo:
        """Answer a health check (raises HostError when the host does not answer)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...

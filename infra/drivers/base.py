"""The protocol every host driver implements.

Every method is idempotent: calling it twice, or after a crash halfway, converges
to the same end state. Library errors are re-raised as `shared.errors.HostError`
(`transient=True` when a retry may succeed: timeouts, connection refused, 5xx).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol, runtime_checkable

from shared.health import LogLine, Stats
from shared.images import RegistryAuth
from shared.runtime import HostInfo, Observed, WorkloadSpec
from shared.states import PowerSignal
from shared.vm import VmOptions


class HostDriver(Protocol):
    def ensure(self, spec: WorkloadSpec) -> Observed:
        """Create the workload if it does not exist (never a second one), with the
        spec's image, limits and labels. Does not start it."""
        ...

    def apply_resources(self, spec: WorkloadSpec) -> Observed:
        """Change the limits of the existing workload in place where the engine can."""
        ...

    def power(self, workload_id: str, signal: PowerSignal, stop_timeout: int = 10) -> Observed:
        """Send a power signal. Reaching the target state already is success. The
        answer's state is the workload's after it; its other fields may be left empty."""
        ...

    def remove(self, workload_id: str, *, keep_data: bool = False) -> None:
        """Destroy the workload and what belongs to it (with `keep_data`, all but its
        data volume, to be recreated around it). Missing is success."""
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

    def stats(self, workload_ids: Sequence[str]) -> dict[str, Stats]:
        """One sample per workload of `workload_ids` that the host has (running or not);
        workloads it does not have are left out. Meant to be cheap for a whole host:
        one reading per workload, taken concurrently. Only reads."""
        ...

    def logs(self, workload_id: str, tail: int, since_ns: int | None = None) -> list[LogLine]:
        """The workload's last `tail` lines of output, oldest first, only those at or
        after `since_ns` (unix ns) when given and the source has timestamps. A workload
        the host does not have has no output: an empty list."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


@runtime_checkable
class ImagePuller(Protocol):
    """A driver whose host fetches images from registries (Docker Engine)."""

    def pull_if_missing(
        self, image: str, auth: RegistryAuth | None, progress: Callable[[str], None]
    ) -> bool:
        """Pull `image` unless the host has it, telling `progress` how far it got;
        True when it pulled. HostError (tenant-safe) when the registry refuses."""
        ...

    def remove_image(self, image: str) -> bool:
        """Remove `image` from the host; False when it was not there."""
        ...

    def image_in_use(self, image: str) -> bool:
        """Whether any workload of the host runs (or was made from) `image`."""
        ...


@runtime_checkable
class VmDriver(HostDriver, Protocol):
    """A driver that runs VMs (`qemu.py`): `ensure` takes the VM options, and the VM's
    forwarded ports and pending shape change can be read back."""

    @property
    def address(self) -> str:
        """The host name or address the forwarded ports answer on."""
        ...

    def ensure(self, spec: WorkloadSpec, vm: VmOptions | None = None) -> Observed: ...

    def forwarded_ports(self, workload_id: str) -> dict[int, int]: ...

    def restart_needed(self, workload_id: str) -> bool: ...


@runtime_checkable
class DataArchiver(Protocol):
    """A driver that can archive a workload's data and put an archive back: a
    container's data path, a tar whose first entry is the path itself (`docker/data.py`);
    a VM's disk, a tar of its one file (`qemu/data.py`)."""

    def archive_data(self, workload_id: str, path: str) -> Iterator[bytes]:
        """The tar stream of `path` in the workload (a VM's disk, whatever `path`);
        BackupRefused(no_data) when the workload has no such path. Close the iterator
        when done with it."""
        ...

    def restore_data(self, workload_id: str, path: str, chunks: Iterable[bytes]) -> None:
        """Replace the contents of `path` in the (stopped) workload with the archive."""
        ...

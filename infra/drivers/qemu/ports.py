"""Host ports for QemuDriver's forwards: which ones are taken, and the lock around picking.

Jobs on one host allocate ports for their VMs' `hostfwd` rules; a lock folder in the VMs'
base folder makes them take turns, so two VMs never get the same port.
"""

from __future__ import annotations

import posixpath
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from infra.drivers.ssh.connection import SshConnection
from shared.errors import HostError

_LISTEN = "0A"


def listening_ports(ssh: SshConnection) -> set[int]:
    """Every port something listens on, from the host's /proc/net/tcp and tcp6."""
    used: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = ssh.get_bytes(table).decode().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == _LISTEN:
                used.add(int(fields[1].rsplit(":", 1)[1], 16))
    return used


@contextmanager
def port_lock(
    ssh: SshConnection,
    base_dir: str,
    address: str,
    *,
    monotonic: Callable[[], float],
    sleep: Callable[[float], None],
    wait: float = 30.0,
    stale_after: float = 120.0,
) -> Iterator[None]:
    """Serialise port allocation between jobs on this host (a lock folder)."""
    ssh.mkdir(base_dir)
    lock = posixpath.join(base_dir, ".ports.lock")
    deadline = monotonic() + wait
    while not ssh.mkdir(lock):
        stamp = ssh.mtime(lock)
        if stamp is not None and time.time() - stamp > stale_after:
            ssh.rmdir(lock)
            continue
        if monotonic() > deadline:
            raise HostError(f"port allocation on {address} is locked", transient=True)
        sleep(0.2)
    try:
        yield
    finally:
        ssh.rmdir(lock)


def allocate_ports(
    guest_ports: Iterable[int], port_range: range, taken: Iterable[int]
) -> dict[int, int]:
    """Host ports for `guest_ports`: the lowest free ones in `port_range`, in order."""
    busy = set(taken)
    wanted = sorted(set(guest_ports))
    free = (p for p in port_range if p not in busy)
    allocated: dict[int, int] = {}
    for guest in wanted:
        host = next(free, None)
        if host is None:
            raise LookupError(f"no free host port left in {port_range.start}-{port_range.stop - 1}")
        allocated[guest] = host
    return allocated

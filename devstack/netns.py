"""A network namespace of its own for a private dockerd, linked to the root namespace.

Docker's bridge networks, published ports and inter-network isolation need iptables and
bridges that must not touch the machine's own network (nor another private dockerd's).
So each private dockerd runs inside a namespace `corraldk-<n>`, joined to the root
namespace by a veth pair `cdk<n>` / `eth0` on its own /30 of 10.214.0.0/16: the root end
is `.1`, the namespace end `.2` (`address`), where the engine's published ports answer
for processes of the root namespace (the tests, a browser on the machine).

Slots are taken under a file lock by looking at which `cdk<n>` links exist, so several
test sessions and a `make run` can each make theirs at the same time.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from devstack.processes import StartupError

SUBNET = ipaddress.IPv4Network("10.214.0.0/16")
SLOTS = SUBNET.num_addresses // 4
_LOCK = Path("/tmp/corral-netns.lock")
_LINK = re.compile(r"^\d+: cdk(\d+)[@:]")


@dataclass(frozen=True)
class Netns:
    """One namespace: `name` (under /run/netns), `address` (its end of the link)."""

    name: str
    link: str
    address: str
    peer_address: str

    def enter(self) -> list[str]:
        """The prefix that runs a command inside the namespace (nothing else changes:
        the file system and the mounts are the machine's)."""
        return ["nsenter", f"--net=/run/netns/{self.name}"]

    def delete(self) -> None:
        """Kill whatever still runs inside, then remove the namespace and its link."""
        for _ in range(50):
            pids = _ip("netns", "pids", self.name, check=False).stdout.split()
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            time.sleep(0.1)
        _ip("netns", "del", self.name, check=False)
        _ip("link", "del", self.link, check=False)


def create_netns() -> Netns:
    """A fresh namespace with loopback up and its link addressed; StartupError when
    `ip` is missing or refuses."""
    try:
        with _locked():
            slot = _free_slot()
            netns = _netns_at(slot)
            _build(netns)
    except FileNotFoundError as exc:
        raise StartupError("`ip` is not installed (Debian package iproute2)") from exc
    except subprocess.CalledProcessError as exc:
        raise StartupError(f"making network namespace failed: {exc.stderr.strip()}") from exc
    return netns


def netns_named(name: str) -> Netns | None:
    """The namespace `corraldk-<n>` as `create_netns` made it (None for another name)."""
    match = re.fullmatch(r"corraldk-(\d+)", name)
    return _netns_at(int(match.group(1))) if match else None


def _netns_at(slot: int) -> Netns:
    base = SUBNET.network_address + 4 * slot
    return Netns(
        name=f"corraldk-{slot}",
        link=f"cdk{slot}",
        address=str(base + 2),
        peer_address=str(base + 1),
    )


def _build(netns: Netns) -> None:
    inside = "eth0"
    _ip("netns", "add", netns.name)
    try:
        _ip("link", "add", netns.link, "type", "veth", "peer", "name", f"{netns.link}p")
        _ip("link", "set", f"{netns.link}p", "netns", netns.name)
        _ip("-n", netns.name, "link", "set", f"{netns.link}p", "name", inside)
        _ip("addr", "add", f"{netns.peer_address}/30", "dev", netns.link)
        _ip("link", "set", netns.link, "up")
        _ip("-n", netns.name, "addr", "add", f"{netns.address}/30", "dev", inside)
        _ip("-n", netns.name, "link", "set", inside, "up")
        _ip("-n", netns.name, "link", "set", "lo", "up")
    except BaseException:
        netns.delete()
        raise


def _free_slot() -> int:
    links = _ip("-o", "link", "show").stdout.splitlines()
    taken = {int(m.group(1)) for line in links if (m := _LINK.match(line))}
    names = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    for slot in range(SLOTS):
        if slot not in taken and f"corraldk-{slot}" not in names:
            return slot
    raise StartupError(f"every network namespace slot in {SUBNET} is taken")


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    with _LOCK.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)

"""A VM's data, archived and restored over the host's SSH connection.

A VM's data is its disk: `disk.qcow2` in its folder, the copy-on-write overlay that holds
everything the guest wrote over its base image. The archive is a tar with that one file
(`disk.qcow2`), streamed from the host's `tar` on stdout, and back into `tar` on stdin
for a restore; nothing of it is held whole in memory, and every command is an argument
vector (the connection quotes each argument).

- A stopped VM's disk is read as it is. A running VM is paused (QMP `stop`, which drains
  and flushes its disk) only while its disk is copied to `.backup/` in its folder, then
  resumed; the copy is streamed and removed. A copy left by a worker killed halfway is
  removed by the next backup (and with the VM's folder).
- A restore unpacks into `.restore/` in the folder, checks the result is a qcow2 image,
  points it at the VM's own base image (so an archive can never name another backing
  file), grows it to the VM's disk size when the VM grew since, and only then renames it
  over `disk.qcow2`: a restore cut short leaves the old disk whole, and the next restore
  starts by removing what it left.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterable, Iterator

from infra.drivers.qemu.record import VmRecord
from infra.drivers.ssh.connection import SshConnection
from shared.errors import HostError

DISK = "disk.qcow2"
SNAPSHOT_DIR = ".backup"
RESTORE_DIR = ".restore"
MIB = 1024 * 1024
# Reading or writing a disk may pause while the store or the host catches up.
STREAM_TIMEOUT_S = 300.0


def snapshot(ssh: SshConnection, folder: str) -> str:
    """Copy the (paused) VM's disk into its snapshot folder; that folder."""
    copies = posixpath.join(folder, SNAPSHOT_DIR)
    clear(ssh, folder)
    ssh.mkdir(copies)
    ssh.check(["cp", "--reflink=auto", "--", posixpath.join(folder, DISK), copies])
    return copies


def clear(ssh: SshConnection, folder: str) -> None:
    """Remove what an earlier backup or restore of the VM left in its folder."""
    for leftover in (SNAPSHOT_DIR, RESTORE_DIR):
        ssh.check(["rm", "-rf", "--", posixpath.join(folder, leftover)])


def archive(ssh: SshConnection, where: str, *, remove_after: bool) -> Iterator[bytes]:
    """The tar stream of `where`/disk.qcow2; `where` is removed once read when
    `remove_after` (a snapshot folder)."""
    try:
        yield from ssh.read_stream(["tar", "-C", where, "-cf", "-", "--", DISK], STREAM_TIMEOUT_S)
    finally:
        if remove_after:
            ssh.check(["rm", "-rf", "--", where])


def replace(ssh: SshConnection, folder: str, record: VmRecord, chunks: Iterable[bytes]) -> None:
    """Replace the stopped VM's disk with the one in the archive `chunks`."""
    clear(ssh, folder)
    staging = posixpath.join(folder, RESTORE_DIR)
    ssh.mkdir(staging)
    ssh.feed(["tar", "-C", staging, "-xf", "-", "--", DISK], chunks, STREAM_TIMEOUT_S)
    staged = posixpath.join(staging, DISK)
    info = json.loads(ssh.check(["qemu-img", "info", "--output=json", "--", staged]))
    if info.get("format") != "qcow2":
        raise HostError(
            f"the archive's {DISK} is {info.get('format')!r}, not qcow2",
            code="restore_failed",
            public="The backup does not hold a VM disk.",
        )
    rebase = ["-u", "-f", "qcow2", "-F", record.base_format, "-b", record.base_image]
    ssh.check(["qemu-img", "rebase", *rebase, "--", staged])
    if int(info["virtual-size"]) < record.disk_mb * MIB:
        ssh.check(["qemu-img", "resize", "-q", "--", staged, f"{record.disk_mb}M"])
    ssh.check(["mv", "-f", "--", staged, posixpath.join(folder, DISK)])
    clear(ssh, folder)

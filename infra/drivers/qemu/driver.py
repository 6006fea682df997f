"""The QEMU host driver: one `qemu-system-x86_64` process per VM, on a host reached over SSH.

Each VM lives in its own folder, `<base_dir>/<workload_dir_name(id)>/`:

    disk.qcow2    copy-on-write overlay of the base image (`<images_dir>/<spec.image>`):
                  the VM's data, what its backups hold (see `data.py`)
    seed.iso      cloud-init NoCloud seed (label `cidata`), built here, uploaded by SFTP
    qmp.sock      QMP socket of the running process
    qemu.pid      its pidfile
    console.log   the serial console
    corral.json   the `VmRecord`: labels, spec, VM options, forwarded ports

QMP is spoken through `socat` on the host (the only tool the host needs besides QEMU):
paramiko cannot open `direct-streamlocal@openssh.com` channels, and a TCP QMP port would
be open to every local user. Networking is QEMU user mode with `hostfwd` rules from host
ports picked in `port_range`, and `restrict=on`, which cuts the guest off from the host
(its loopback included) and the outside while the forwarded ports still answer. Only a
host built with `guest_outgoing` (its operator opted in) lets guests out, unless the VM
asked `deny_outgoing`.
"""

from __future__ import annotations

import json
import posixpath
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

from infra.drivers.qemu import data as vm_data
from infra.drivers.qemu import observe as qemu_observe
from infra.drivers.qemu.cloud_init import build_seed_iso
from infra.drivers.qemu.command import DISK_DEVICE, QemuSetup, qemu_command
from infra.drivers.qemu.ports import allocate_ports, listening_ports, port_lock
from infra.drivers.qemu.qmp import QmpSession
from infra.drivers.qemu.record import VmRecord, guest_hostname, qmp_state, workload_dir_name
from infra.drivers.ssh.connection import SshConnection
from shared.backups import BackupRefused
from shared.errors import HostError, workload_missing
from shared.health import LogLine, Stats
from shared.runtime import LABEL_MANAGED, HostInfo, Observed, RuntimeState, WorkloadSpec
from shared.states import PowerSignal
from shared.vm import VmOptions, is_image_name, is_plain_folder

MIB = 1024 * 1024
RECORD_FILE = "corral.json"
ENFORCED = {"cpu_cores": True, "ram_mb": True, "storage_mb": True, "io": False}


class QemuDriver:
    """VMs under QEMU on one SSH host. See the module docstring for the host layout.

    `ensure` needs the VM options (`ensure(spec, vm=...)`) the first time; they are
    kept in the VM's record, so every later call (power, resize, inspect) needs only
    the workload id or spec.
    """

    def __init__(
        self,
        connection: SshConnection,
        *,
        base_dir: str = "/var/lib/corral/vms",
        images_dir: str = "/var/lib/corral/images",
        port_range: range = range(20000, 30000),
        accel: str = "kvm:tcg",
        machine: str = "q35",
        bind_address: str = "",
        guest_outgoing: bool = False,
        qemu_binary: str = "qemu-system-x86_64",
        start_timeout: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        for path in (base_dir, images_dir):
            if not is_plain_folder(path):
                raise ValueError(f"{path!r}: folders must be absolute plain paths")
        self._ssh = connection
        self.base_dir = base_dir.rstrip("/")
        self.port_range = port_range
        self.setup = QemuSetup(
            images_dir=images_dir.rstrip("/"),
            qemu_binary=qemu_binary,
            machine=machine,
            accel=accel,
            bind_address=bind_address,
            guest_outgoing=guest_outgoing,
        )
        self.start_timeout = start_timeout
        self._sleep = sleep
        self._monotonic = monotonic

    @property
    def address(self) -> str:
        return self._ssh.host

    # -- paths and records --------------------------------------------------

    def workload_dir(self, workload_id: str) -> str:
        return posixpath.join(self.base_dir, workload_dir_name(workload_id))

    def _file(self, workload_id: str, name: str) -> str:
        return posixpath.join(self.workload_dir(workload_id), name)

    def _read_record(self, workload_id: str) -> VmRecord | None:
        try:
            raw = self._ssh.get_bytes(self._file(workload_id, RECORD_FILE))
        except FileNotFoundError:
            return None
        try:
            return VmRecord.from_json(raw)
        except (ValueError, KeyError, TypeError) as exc:
            raise HostError(f"VM record of {workload_id!r} is unreadable: {exc}") from exc

    def _record(self, workload_id: str) -> VmRecord:
        record = self._read_record(workload_id)
        if record is None:
            raise workload_missing(f"no VM {workload_id!r} on {self.address}")
        return record

    def _write_record(self, record: VmRecord) -> None:
        self._ssh.put_bytes(self._file(record.workload_id, RECORD_FILE), record.to_json())

    def _image_info(self, path: str) -> dict[str, Any]:
        out = self._ssh.check(["qemu-img", "info", "--output=json", "-U", path])
        info: dict[str, Any] = json.loads(out)
        return info

    # -- HostDriver ---------------------------------------------------------

    def ensure(self, spec: WorkloadSpec, vm: VmOptions | None = None) -> Observed:
        """Create the VM's folder, disk, seed and record (not started). A VM that has
        a record already is left as it is."""
        record = self._read_record(spec.workload_id)
        if record is not None:
            return self._observe(record)
        if vm is None:
            raise HostError(f"VM {spec.workload_id!r} does not exist and no VM options were given")
        folder = self.workload_dir(spec.workload_id)
        self._ssh.mkdir(self.base_dir)
        self._ssh.mkdir(folder)
        base = self.setup.image_path(spec.image)
        info = self._image_info(base)
        base_mb = -(-int(info["virtual-size"]) // MIB)
        disk_mb = max(spec.resources.storage_mb, base_mb)
        for name in (vm.kernel, vm.initrd):
            if name is not None:
                self._require_file(name)
        disk = posixpath.join(folder, "disk.qcow2")
        backing = ["-F", str(info["format"]), "-b", base]
        self._ssh.check(["qemu-img", "create", "-q", "-f", "qcow2", *backing, disk, f"{disk_mb}M"])
        seed = build_seed_iso(spec.workload_id, guest_hostname(spec.workload_id), vm.ssh_keys)
        self._ssh.put_bytes(posixpath.join(folder, "seed.iso"), seed)
        with port_lock(
            self._ssh, self.base_dir, self.address, monotonic=self._monotonic, sleep=self._sleep
        ):
            # Another job may have finished the same VM while this one waited.
            existing = self._read_record(spec.workload_id)
            if existing is not None:
                return self._observe(existing)
            try:
                ports = allocate_ports(vm.guest_ports, self.port_range, self._ports_in_use())
            except LookupError as exc:
                raise HostError(f"{exc} on {self.address}") from exc
            record = VmRecord(spec, vm, ports, base, str(info["format"]), disk_mb)
            self._write_record(record)
        return self._observe(record)

    def apply_resources(self, spec: WorkloadSpec) -> Observed:
        """Grow the disk now (live through QMP when running); memory and vCPUs are
        recorded and take effect at the next start (see `restart_needed`)."""
        record = self._record(spec.workload_id)
        disk_mb = record.disk_mb
        if spec.resources.storage_mb < record.spec.resources.storage_mb:
            raise HostError(f"a VM disk cannot shrink ({record.disk_mb} MiB now)")
        if spec.resources.storage_mb > record.disk_mb:
            disk_mb = spec.resources.storage_mb
            if self._pid(spec.workload_id) is not None:
                with self._qmp(spec.workload_id) as qmp:
                    qmp.execute("block_resize", {"device": DISK_DEVICE, "size": disk_mb * MIB})
            else:
                disk = self._file(spec.workload_id, "disk.qcow2")
                self._ssh.check(["qemu-img", "resize", "-q", disk, f"{disk_mb}M"])
        record = record.with_spec(spec, disk_mb)
        self._write_record(record)
        return self._observe(record)

    def power(self, workload_id: str, signal: PowerSignal, stop_timeout: int = 10) -> Observed:
        record = self._record(workload_id)
        if signal is PowerSignal.START:
            self._start(record)
        elif signal is PowerSignal.STOP:
            self._stop(workload_id, stop_timeout)
        elif signal is PowerSignal.RESTART:
            self._stop(workload_id, stop_timeout)
            self._start(self._record(workload_id))
        elif signal is PowerSignal.KILL:
            self._kill(workload_id)
        elif signal is PowerSignal.PAUSE:
            self._switch(workload_id, "stop", "paused")
        elif signal is PowerSignal.RESUME:
            self._switch(workload_id, "cont", "running")
        return self.inspect(workload_id)

    def remove(self, workload_id: str, *, keep_data: bool = False) -> None:
        # A VM's disk is made from its image each time it is created: there is no data
        # apart from the VM to keep, so `keep_data` changes nothing here.
        self._kill(workload_id)
        self._ssh.check(["rm", "-rf", "--", self.workload_dir(workload_id)])

    def inspect(self, workload_id: str) -> Observed:
        record = self._read_record(workload_id)
        if record is None:
            return Observed(workload_id=workload_id, state=RuntimeState.MISSING)
        return self._observe(record)

    def list_managed(self) -> list[Observed]:
        found = []
        for record in self._records():
            if record.spec.labels().get(LABEL_MANAGED) == "true":
                found.append(self._observe(record))
        return found

    def probe(self) -> HostInfo:
        """Answer a health check: the host runs commands, has QEMU, qemu-img, socat and
        tar, and lists the image files in its images folder."""
        tools = [self.setup.qemu_binary, "qemu-img", "socat", "tar"]
        found = self._ssh.run(["which", *tools]).stdout.decode().split()
        missing = [t for t in tools if not any(path.endswith(f"/{t}") for path in found)]
        if missing:
            raise HostError(f"{self.address} lacks {', '.join(missing)}")
        names = self._ssh.listdir(self.setup.images_dir)
        return HostInfo(images=tuple(name for name in names if is_image_name(name)))

    def close(self) -> None:
        self._ssh.close()

    # -- WorkloadObserver (see qemu_observe) --------------------------------

    def stats(self, workload_ids: Sequence[str]) -> dict[str, Stats]:
        """One sample per VM that has a record here, in one SSH command."""
        folders = {workload_id: self.workload_dir(workload_id) for workload_id in workload_ids}
        return qemu_observe.stats(self._ssh, folders)

    def logs(self, workload_id: str, tail: int, since_ns: int | None = None) -> list[LogLine]:
        """The serial console's last `tail` lines. They have no timestamps, so `since_ns`
        filters nothing: every read answers the tail (see qemu_observe)."""
        return qemu_observe.logs(self._ssh, self._file(workload_id, "console.log"), tail)

    # -- DataArchiver (see vm_data) -----------------------------------------

    def archive_data(self, workload_id: str, path: str) -> Iterator[bytes]:
        """The tar stream of the VM's disk (a VM's data is its disk: `path`, a guest
        path, names nothing here). A running VM is paused only while its disk is copied."""
        if self._read_record(workload_id) is None:
            raise BackupRefused("missing", "The VM is missing on its host.")
        folder = self.workload_dir(workload_id)
        if self._pid(workload_id) is None:
            vm_data.clear(self._ssh, folder)
            return vm_data.archive(self._ssh, folder, remove_after=False)
        with self._paused(workload_id):
            copies = vm_data.snapshot(self._ssh, folder)
        return vm_data.archive(self._ssh, copies, remove_after=True)

    def restore_data(self, workload_id: str, path: str, chunks: Iterable[bytes]) -> None:
        """Replace the stopped VM's disk with the archive's."""
        record = self._record(workload_id)
        if self._pid(workload_id) is not None:
            raise HostError(f"VM {workload_id!r} runs: stop it before restoring its disk")
        vm_data.replace(self._ssh, self.workload_dir(workload_id), record, chunks)

    @contextmanager
    def _paused(self, workload_id: str) -> Iterator[None]:
        """The VM paused (its disk drained and flushed), and running again after, if it
        was running before."""
        with self._qmp(workload_id) as qmp:
            running = qmp.execute("query-status")["status"] == "running"
            if running:
                qmp.execute("stop")
        try:
            yield
        finally:
            if running:
                with self._qmp(workload_id) as qmp:
                    qmp.execute("cont")

    # -- VM-only extras -----------------------------------------------------

    def forwarded_ports(self, workload_id: str) -> dict[int, int]:
        """Guest port → host port, for every exposed port (22 included)."""
        return dict(self._record(workload_id).ports)

    def restart_needed(self, workload_id: str) -> bool:
        """True while the running VM has other memory or vCPUs than its spec asks."""
        record = self._record(workload_id)
        if self._pid(workload_id) is None:
            return False
        return record.booted_with != record.shape

    def console_log(self, workload_id: str, limit: int = 64 * 1024) -> bytes:
        """The tail of the serial console of the current (or last) boot."""
        try:
            return self._ssh.get_bytes(self._file(workload_id, "console.log"))[-limit:]
        except FileNotFoundError:
            return b""

    def qmp(self, workload_id: str, command: str, arguments: dict[str, Any] | None = None) -> Any:
        """Run one QMP command on the running VM and return its answer."""
        with self._qmp(workload_id) as qmp:
            return qmp.execute(command, arguments)

    # -- internals ----------------------------------------------------------

    def _require_file(self, name: str) -> None:
        if self._ssh.mtime(self.setup.image_path(name)) is None:
            raise HostError(f"image file {name!r} is missing on {self.address}")

    def _records(self) -> Iterator[VmRecord]:
        for name in self._ssh.listdir(self.base_dir):
            if name.startswith("."):
                continue
            path = posixpath.join(self.base_dir, name, RECORD_FILE)
            try:
                raw = self._ssh.get_bytes(path)
            except FileNotFoundError:
                continue
            with suppress(ValueError, KeyError, TypeError):
                yield VmRecord.from_json(raw)

    def _ports_in_use(self) -> set[int]:
        """Host ports forwarded to any VM here, and every port something listens on."""
        used = {port for record in self._records() for port in record.ports.values()}
        return used | listening_ports(self._ssh)

    def _pid(self, workload_id: str) -> int | None:
        """The QEMU process of this VM, if one runs (checked against its command line,
        so a recycled pid is never taken for it)."""
        pidfile = self._file(workload_id, "qemu.pid")
        try:
            pid = int(self._ssh.get_bytes(pidfile).strip())
            cmdline = self._ssh.get_bytes(f"/proc/{pid}/cmdline")
        except (FileNotFoundError, ValueError):
            return None
        return pid if pidfile.encode() in cmdline.split(b"\0") else None

    @contextmanager
    def _qmp(self, workload_id: str) -> Iterator[QmpSession]:
        socket_path = self._file(workload_id, "qmp.sock")
        with self._ssh.stream(["socat", "-", f"UNIX-CONNECT:{socket_path}"], timeout=15) as stream:
            yield QmpSession(stream)

    def _observe(self, record: VmRecord) -> Observed:
        state = RuntimeState.STOPPED
        if self._pid(record.workload_id) is not None:
            try:
                status = self.qmp(record.workload_id, "query-status")["status"]
                state = qmp_state(status)
            except HostError:
                if self._pid(record.workload_id) is not None:
                    raise  # still there, yet not answering: worth a retry
        return Observed(
            workload_id=record.workload_id,
            state=state,
            runtime_id=workload_dir_name(record.workload_id),
            image=record.spec.image,
            enforced=dict(ENFORCED),
            labels=record.spec.labels(),
            environment=dict(record.spec.environment),
        )

    def _start(self, record: VmRecord) -> None:
        workload_id = record.workload_id
        if self._pid(workload_id) is not None:
            with self._qmp(workload_id) as qmp:
                if qmp.execute("query-status")["status"] != "running":
                    qmp.execute("cont")
            return
        for stale in ("qmp.sock", "qemu.pid"):
            self._ssh.remove(self._file(workload_id, stale))
        self._write_record(record.booted())
        argv = qemu_command(record, self.workload_dir(workload_id), self.setup)
        self._ssh.check(argv, timeout=self.start_timeout)

    def _wait_gone(self, workload_id: str, seconds: float) -> bool:
        deadline = self._monotonic() + seconds
        while self._pid(workload_id) is not None:
            if self._monotonic() > deadline:
                return False
            self._sleep(0.25)
        return True

    def _stop(self, workload_id: str, stop_timeout: float) -> None:
        """ACPI power button, then `quit` once `stop_timeout` has passed."""
        if self._pid(workload_id) is None:
            return
        with suppress(HostError), self._qmp(workload_id) as qmp:
            if qmp.execute("query-status")["status"] != "running":
                qmp.execute("cont")  # a paused guest cannot see the power button
            qmp.execute("system_powerdown")
        if not self._wait_gone(workload_id, stop_timeout):
            self._kill(workload_id)

    def _kill(self, workload_id: str) -> None:
        """`quit` through QMP, and SIGKILL when QEMU does not go away at once."""
        pid = self._pid(workload_id)
        if pid is None:
            return
        with suppress(HostError), self._qmp(workload_id) as qmp:
            qmp.quit()
        if self._wait_gone(workload_id, 3):
            return
        self._ssh.run(["kill", "-KILL", str(pid)])
        if not self._wait_gone(workload_id, 10):
            raise HostError(f"QEMU of {workload_id!r} (pid {pid}) does not die", transient=True)

    def _switch(self, workload_id: str, command: str, wanted: str) -> None:
        """Pause (`stop`) or resume (`cont`), checked through `query-status`."""
        if self._pid(workload_id) is None:
            raise HostError(f"VM {workload_id!r} is not running")
        with self._qmp(workload_id) as qmp:
            if qmp.execute("query-status")["status"] != wanted:
                qmp.execute(command)
            status = qmp.execute("query-status")["status"]
        if status != wanted:
            raise HostError(f"VM {workload_id!r} is {status} after {command}", transient=True)

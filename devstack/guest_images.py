"""Guest images for local VM hosts (`make run`'s and the VM integration tests').

`build_vm_images()` makes, once per cache folder and kept under a folder keyed by the
kernel, busybox and init script: the Debian kernel (`/boot/vmlinuz-*`), a busybox
initramfs (newc cpio, gzip, written here in Python) and a small qcow2 base disk.

The kernel is kept as the ELF inside Debian's compressed bzImage (still named
`vmlinuz`, the name eggs already use), which QEMU starts at its PVH entry point: under
TCG the bzImage's own xz decompression took more than half of a guest's boot (46 s
against 21 s, the two booted side by side on a busy machine). A kernel whose payload
is neither xz nor gzip, or that has no PVH entry, is kept as it is.

The guest's /init (busybox sh, PID 1):
- loads the virtio network modules and brings eth0 up as 10.0.2.15 (QEMU user net);
- answers on every port of `corral_listen=22,80` (kernel command line) with
  `corral-guest-hello <port>`;
- every 2 s tries a TCP connection to `corral_probe=IP:PORT` and prints
  `CORRAL-OUTBOUND-OK` or `CORRAL-OUTBOUND-FAIL` to the serial console;
- prints `CORRAL-BOOTED` once listening, and powers off (`CORRAL-POWEROFF`) on the
  ACPI power button.

The guest runs no sshd: port 22 answers with the same greeting as the others.

A missing kernel, busybox or QEMU raises StartupError naming
`tests/fixtures/install_vm_deps.sh` (`make deps` runs it).
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import shutil
import struct
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from devstack.processes import StartupError

INSTALL_HINT = "run tests/fixtures/install_vm_deps.sh (as root; `make deps` does) first"
BUSYBOX = Path("/bin/busybox")

# In load order (each after what it depends on).
GUEST_MODULES = (
    "drivers/virtio/virtio_ring.ko",
    "drivers/virtio/virtio.ko",
    "drivers/virtio/virtio_pci_modern_dev.ko",
    "drivers/virtio/virtio_pci_legacy_dev.ko",
    "drivers/virtio/virtio_pci.ko",
    "net/core/failover.ko",
    "drivers/net/net_failover.ko",
    "drivers/net/virtio_net.ko",
    "drivers/acpi/button.ko",
    "drivers/input/evdev.ko",
)

KERNEL_NAME = "vmlinuz"
GUEST_KERNEL_FORMAT = "elf-pvh"  # in the cache key: caches of the bzImage as is are not reused
INITRD_NAME = "initramfs.gz"
BASE_DISK_NAME = "base.qcow2"

INIT_SCRIPT = r"""#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp /run /var/log
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s /bin
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for module in $(cat /etc/modules); do insmod "/lib/modules/$module" 2>/dev/null; done

LISTEN=""
PROBE=""
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    corral_listen=*) LISTEN="${arg#corral_listen=}" ;;
    corral_probe=*) PROBE="${arg#corral_probe=}" ;;
  esac
done

tries=0
while [ ! -e /sys/class/net/eth0 ] && [ $tries -lt 50 ]; do sleep 0.1; tries=$((tries + 1)); done
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
echo "CORRAL-NET $(ip -4 -o addr show dev eth0)"

acpid -d -c /etc/acpi >/dev/null 2>&1 &

for port in $(echo "$LISTEN" | tr ',' ' '); do
  nc -ll -p "$port" -e /bin/corral-hello "$port" &
done

if [ -n "$PROBE" ]; then
  (
    while true; do
      if echo "corral-probe" | nc -w 2 "${PROBE%:*}" "${PROBE##*:}" >/dev/null 2>&1; then
        echo "CORRAL-OUTBOUND-OK"
      else
        echo "CORRAL-OUTBOUND-FAIL"
      fi
      sleep 2
    done
  ) &
fi

sleep 1
echo "CORRAL-BOOTED"
while true; do sleep 3600; done
"""

HELLO_SCRIPT = """#!/bin/sh
echo "corral-guest-hello $1"
"""

POWER_BUTTON_SCRIPT = """#!/bin/sh
echo "CORRAL-POWEROFF" > /dev/console
sync
poweroff -f
"""


@dataclass(frozen=True)
class VmImages:
    """Files a test host's images folder needs, by the names the tests use."""

    folder: Path
    kernel_version: str

    @property
    def kernel(self) -> Path:
        return self.folder / KERNEL_NAME

    @property
    def initrd(self) -> Path:
        return self.folder / INITRD_NAME

    @property
    def base_disk(self) -> Path:
        return self.folder / BASE_DISK_NAME

    def install_into(self, images_dir: Path) -> None:
        """Make the images visible in a host's images folder (symlinks)."""
        images_dir.mkdir(parents=True, exist_ok=True)
        for source in (self.kernel, self.initrd, self.base_disk):
            link = images_dir / source.name
            if not link.exists():
                link.symlink_to(source)


class _Cpio:
    """A newc ("070701") cpio archive, as the kernel unpacks into its initramfs."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._inode = 1

    def _entry(
        self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)
    ) -> None:
        encoded = name.encode() + b"\0"
        fields = (
            self._inode, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(encoded), 0,
        )  # fmt: skip
        header = b"070701" + b"".join(f"{value:08x}".encode() for value in fields)
        self._inode += 1
        self._parts.append(_pad(header + encoded))
        self._parts.append(_pad(data))

    def directory(self, name: str) -> None:
        self._entry(name, 0o040755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, 0o100000 | mode, data)

    def char_device(self, name: str, major: int, minor: int) -> None:
        self._entry(name, 0o020600, rdev=(major, minor))

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return b"".join(self._parts)


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def _newest_kernel() -> tuple[Path, str]:
    kernels = sorted(Path("/boot").glob("vmlinuz-*"))
    if not kernels:
        raise StartupError(f"no kernel in /boot: {INSTALL_HINT}")
    kernel = kernels[-1]
    return kernel, kernel.name.removeprefix("vmlinuz-")


def _initramfs(kernel_version: str) -> bytes:
    modules_root = Path("/lib/modules") / kernel_version / "kernel"
    archive = _Cpio()
    for folder in ("bin", "dev", "etc", "etc/acpi", "etc/acpi/PWRF", "lib", "lib/modules"):
        archive.directory(folder)
    for folder in ("proc", "sys", "tmp", "run"):
        archive.directory(folder)
    archive.char_device("dev/console", 5, 1)
    archive.char_device("dev/null", 1, 3)
    archive.file("init", INIT_SCRIPT.encode(), 0o755)
    archive.file("bin/busybox", BUSYBOX.read_bytes(), 0o755)
    archive.file("bin/corral-hello", HELLO_SCRIPT.encode(), 0o755)
    archive.file("etc/acpi/PWRF/00000080", POWER_BUTTON_SCRIPT.encode(), 0o755)
    names = []
    for relative in GUEST_MODULES:
        module = modules_root / relative
        if not module.exists():
            raise StartupError(f"kernel module {module} is missing: {INSTALL_HINT}")
        names.append(module.name)
        archive.file(f"lib/modules/{module.name}", module.read_bytes())
    archive.file("etc/modules", ("\n".join(names) + "\n").encode())
    return gzip.compress(archive.finish(), compresslevel=6, mtime=0)


def _guest_kernel(bzimage: bytes) -> bytes:
    """The ELF kernel inside `bzimage` when QEMU can start it at its PVH entry point
    (it then skips the slow decompression under TCG); else `bzimage` itself."""
    if bzimage[0x202:0x206] != b"HdrS" or struct.unpack_from("<H", bzimage, 0x206)[0] < 0x208:
        return bzimage  # no boot protocol 2.08 header: no payload fields to read
    setup_sectors = bzimage[0x1F1] or 4
    offset, length = struct.unpack_from("<II", bzimage, 0x248)
    start = (setup_sectors + 1) * 512 + offset
    payload = bzimage[start : start + length]
    try:
        if payload.startswith(b"\xfd7zXZ\x00"):
            elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(payload)
        elif payload.startswith(b"\x1f\x8b"):
            elf = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(payload)
        else:
            return bzimage
    except (lzma.LZMAError, zlib.error):
        return bzimage
    return elf if _has_pvh_entry(elf) else bzimage


def _has_pvh_entry(elf: bytes) -> bool:
    """Whether a 64-bit ELF carries Xen's PHYS32_ENTRY note (type 18), QEMU's way in."""
    if elf[:5] != b"\x7fELF\x02":
        return False
    (program_headers,) = struct.unpack_from("<Q", elf, 0x20)
    entry_size, count = struct.unpack_from("<HH", elf, 0x36)
    for index in range(count):
        kind, _, at, _, _, size = struct.unpack_from(
            "<IIQQQQ", elf, program_headers + index * entry_size
        )
        if kind != 4:  # PT_NOTE
            continue
        end, note = at + size, at
        while note + 12 <= end:
            name_size, desc_size, note_type = struct.unpack_from("<III", elf, note)
            name = elf[note + 12 : note + 12 + name_size]
            if name == b"Xen\x00" and note_type == 18:
                return True
            note += 12 + -(-name_size // 4) * 4 + -(-desc_size // 4) * 4
    return False


def _cache_key(kernel: Path, kernel_version: str) -> str:
    digest = hashlib.sha256()
    parts = (GUEST_KERNEL_FORMAT, kernel_version, INIT_SCRIPT, HELLO_SCRIPT, POWER_BUTTON_SCRIPT)
    for part in (*parts, *GUEST_MODULES):
        digest.update(part.encode() + b"\0")
    for path in (kernel, BUSYBOX):
        stat = path.stat()
        digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def build_vm_images(cache_root: Path) -> VmImages:
    """Build (or reuse) the guest kernel, initramfs and base disk under `cache_root`;
    StartupError if QEMU, the kernel or busybox is missing."""
    for tool in ("qemu-img", "qemu-system-x86_64"):
        if shutil.which(tool) is None:
            raise StartupError(f"{tool} is not installed: {INSTALL_HINT}")
    if not BUSYBOX.exists():
        raise StartupError(f"{BUSYBOX} is missing: {INSTALL_HINT}")
    kernel, version = _newest_kernel()
    folder = cache_root / f"{version}-{_cache_key(kernel, version)}"
    if (folder / BASE_DISK_NAME).exists():
        return VmImages(folder, version)
    cache_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".build-", dir=cache_root))
    staging.chmod(0o755)
    try:
        (staging / KERNEL_NAME).write_bytes(_guest_kernel(kernel.read_bytes()))
        (staging / INITRD_NAME).write_bytes(_initramfs(version))
        subprocess.run(
            ["qemu-img", "create", "-q", "-f", "qcow2", str(staging / BASE_DISK_NAME), "32M"],
            check=True,
        )
        for item in staging.iterdir():
            item.chmod(0o644)
        try:
            staging.rename(folder)
        except OSError:
            if not (folder / BASE_DISK_NAME).exists():  # not a concurrent build's result
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return VmImages(folder, version)

"""A tiny busybox image built from the host's busybox-static, for hosts without a registry.

Docker Hub is out of reach in development and tests, so `make run` and the test
fixtures import this rootfs as `corral/busybox:latest` instead of pulling one.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import docker
import docker.errors

BUSYBOX_BINARY = Path("/bin/busybox")  # Debian's busybox-static: no shared libraries needed
BUSYBOX_APPLETS: tuple[str, ...] = (
    "sh",
    "sleep",
    "cat",
    "echo",
    "ls",
    "yes",
    "dd",
    "head",
    "tail",
    "printf",
    "top",
    "env",
    "kill",
)
BUSYBOX_REPOSITORY = "corral/busybox"
BUSYBOX_TAG = "latest"

# Runs until told to stop and exits at once on SIGTERM: as PID 1 the shell would
# otherwise ignore SIGTERM and every `docker stop` would wait out its timeout.
IDLE_COMMAND: tuple[str, ...] = (
    "/bin/sh",
    "-c",
    "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done",
)

_DIRECTORIES: dict[str, int] = {
    "bin": 0o755,
    "dev": 0o755,
    "etc": 0o755,
    "proc": 0o555,
    "root": 0o700,
    "sys": 0o555,
    "tmp": 0o1777,
}


def build_busybox_rootfs_tar(busybox: Path = BUSYBOX_BINARY) -> bytes:
    """A tar of a minimal rootfs: /bin/busybox, applet symlinks, and empty system dirs."""
    binary = busybox.read_bytes()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, mode in _DIRECTORIES.items():
            tar.addfile(_entry(name, tarfile.DIRTYPE, mode))
        tar.addfile(
            _entry("bin/busybox", tarfile.REGTYPE, 0o755, size=len(binary)), io.BytesIO(binary)
        )
        for applet in BUSYBOX_APPLETS:
            tar.addfile(_entry(f"bin/{applet}", tarfile.SYMTYPE, 0o777, linkname="busybox"))
    return buffer.getvalue()


def _entry(
    name: str, kind: bytes, mode: int, *, size: int = 0, linkname: str = ""
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.linkname = linkname
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def import_busybox(
    client: docker.DockerClient,
    repository: str = BUSYBOX_REPOSITORY,
    tag: str = BUSYBOX_TAG,
) -> str:
    """Import the busybox rootfs as `repository:tag` unless the host has it; return the ref."""
    ref = f"{repository}:{tag}"
    try:
        client.images.get(ref)
    except docker.errors.ImageNotFound:
        pass
    else:
        return ref
    changes = [
        "ENV PATH=/bin",
        f"CMD {json.dumps(list(IDLE_COMMAND))}",
    ]
    client.api.import_image_from_data(
        build_busybox_rootfs_tar(), repository=repository, tag=tag, changes=changes
    )
    return ref

"""An OpenSSH sshd in a network namespace of its own: a VM host on this machine, for
`make run` (devstack/vmhost.py) and the VM integration tests (tests/fixtures/netns.py).

A namespace is joined to the root namespace by a veth pair on its own /24 (the root
end `.1`, the namespace end `.2`, named eth0 inside), with loopback up. Nothing is
routed anywhere: traffic only flows between the root namespace and the namespace.
Everything QEMU runs for the host runs inside it, so deleting the namespace
(`delete_namespace`) SIGKILLs every process found in it first.

The sshd listens on the namespace's address, port 2222: an ed25519 host key of its
own, no PAM, root login by key only, one authorized client key, SFTP. Its files live
in a folder of the machine's file system (namespaces share it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from devstack.processes import Child, StartupError

SSHD = "/usr/sbin/sshd"
SSH_PORT = 2222
INSTALL_HINT = "run tests/fixtures/install_vm_deps.sh (as root; `make deps` does) first"


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`ip *args`; with `check`, StartupError (with ip's message) if it fails."""
    done = subprocess.run(["ip", *args], check=False, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise StartupError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")
    return done


def check_tools() -> None:
    """StartupError unless this process may make namespaces and run sshd in them."""
    for tool in ("ip", SSHD):
        if shutil.which(tool) is None:
            raise StartupError(f"{tool} is not installed: {INSTALL_HINT}")
    if os.geteuid() != 0:
        raise StartupError("network namespaces need root")


# -- namespaces -----------------------------------------------------------------------


@dataclass(frozen=True)
class Namespace:
    """A network namespace and its link: `address` is the namespace's end (where its
    servers listen), `peer_address` the root namespace's end."""

    name: str
    root_link: str
    address: str
    peer_address: str


def free_subnet(prefix: str, preferred: int | None = None) -> int:
    """The third octet of a /24 under `prefix` (such as "10.213") that no interface of
    the root namespace uses, `preferred` if it is free."""
    used = ip("-4", "-o", "addr").stdout
    candidates = range(1, 255) if preferred is None else (preferred, *range(1, 255))
    for third in candidates:
        if f" {prefix}.{third}." not in used:
            return third
    raise StartupError(f"no free {prefix}.x.0/24 subnet")


def make_namespace(name: str, root_link: str, prefix: str, third: int) -> Namespace:
    """A new namespace `name` on `prefix`.`third`.0/24, joined by veth `root_link`."""
    peer, address = f"{prefix}.{third}.1", f"{prefix}.{third}.2"
    ip("netns", "add", name)
    ip("link", "add", root_link, "type", "veth", "peer", "name", "eth0", "netns", name)
    ip("addr", "add", f"{peer}/24", "dev", root_link)
    ip("link", "set", root_link, "up")
    ip("-n", name, "addr", "add", f"{address}/24", "dev", "eth0")
    ip("-n", name, "link", "set", "eth0", "up")
    ip("-n", name, "link", "set", "lo", "up")
    return Namespace(name, root_link, address, peer)


def namespace_exists(name: str) -> bool:
    return any(line.split()[0] == name for line in ip("netns", "list").stdout.splitlines() if line)


def namespace_pids(name: str) -> list[int]:
    return [int(pid) for pid in ip("netns", "pids", name, check=False).stdout.split()]


def delete_namespace(name: str, root_link: str | None = None) -> None:
    """SIGKILL everything in namespace `name` (sshd, QEMU, ...), delete it and its
    link; nothing happens for what is not there."""
    for _ in range(50):
        pids = namespace_pids(name)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    ip("netns", "del", name, check=False)
    if root_link is not None:  # gone with its peer, unless the namespace never had it
        ip("link", "del", root_link, check=False)


# -- sshd -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SshdFiles:
    """An sshd's folder (config, host key, authorized_keys, log) and the keys a client
    pins and logs in with."""

    folder: Path
    host_key: str  # `ssh-ed25519 AAAA...`, as ssh-keyscan prints it
    client_key_pem: str
    client_public_key: str

    @property
    def config(self) -> Path:
        return self.folder / "sshd_config"

    @property
    def log(self) -> Path:
        return self.folder / "sshd.log"


def keypair() -> tuple[str, str]:
    """A fresh ed25519 key: (OpenSSH private key, `ssh-ed25519 AAAA...` public key)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    return private, public_key_of(private)


def public_key_of(private_pem: str) -> str:
    key = serialization.load_ssh_private_key(private_pem.encode(), password=None)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )


def prepare_sshd(folder: Path, address: str, port: int = SSH_PORT) -> SshdFiles:
    """Write an sshd's config for `address`:`port` into `folder`. Its host key and the
    client's key are made once and kept there, so a host registered with them stays
    valid across restarts of the sshd."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    host_key_file, client_key_file = folder / "ssh_host_ed25519_key", folder / "client_key"
    for key_file in (host_key_file, client_key_file):
        if not key_file.exists():
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(keypair()[0])
    client_private = client_key_file.read_text()
    files = SshdFiles(
        folder=folder,
        host_key=public_key_of(host_key_file.read_text()),
        client_key_pem=client_private,
        client_public_key=public_key_of(client_private),
    )
    (folder / "authorized_keys").write_text(files.client_public_key + "\n")
    files.config.write_text(
        "\n".join(
            [
                f"Port {port}",
                f"ListenAddress {address}",
                f"HostKey {host_key_file}",
                f"PidFile {folder / 'sshd.pid'}",
                f"AuthorizedKeysFile {folder / 'authorized_keys'}",
                "PermitRootLogin prohibit-password",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "StrictModes no",
                "AllowTcpForwarding no",
                "X11Forwarding no",
                "PrintMotd no",
                "MaxSessions 50",
                "MaxStartups 50",
                "LogLevel ERROR",
                "Subsystem sftp internal-sftp",
                "",
            ]
        )
    )
    return files


def start_sshd(
    namespace: str,
    files: SshdFiles,
    address: str,
    port: int = SSH_PORT,
    *,
    name: str = "sshd",
    log_path: Path | None = None,
    append_log: bool = False,
) -> Child:
    """sshd in `namespace` (in the foreground, as a Child); returns once it accepts
    connections on `address`:`port`, StartupError with its log if it does not."""
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # its privilege separation folder
    command = ["ip", "netns", "exec", namespace, SSHD, "-D", "-e", "-f", str(files.config)]
    child = Child(name, command, dict(os.environ), log_path or files.log, append_log=append_log)
    try:
        child.wait_until(lambda: _accepts(address, port), f"{name} to listen on {address}:{port}")
    except BaseException:
        child.stop()
        raise
    return child


def _accepts(address: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((address, port), timeout=1):
        return True
    return False

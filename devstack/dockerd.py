"""A private dockerd, apart from any Docker already on the machine: for `make run`,
the integration tests and the benchmarks.

Debian's `dockerd` runs with every path of its own (data root, exec root, pidfile,
socket, config file) inside a network namespace of its own (devstack/netns.py), where
it has the bridge networks and iptables rules a production engine has: published ports
answer at `Dockerd.public_address` (the namespace's end of its link) and one cluster's
network is cut off from another's. Several can run side by side and none touches the
host's Docker or the machine's own network. Each starts a private
containerd under its exec root. Sockets, the exec root and the pidfile live in a short
directory in /tmp, because unix socket paths are limited to 108 bytes and containerd
puts its own a few levels below the exec root.

With `enforce_storage=True` its data root is a btrfs image with quota groups and its
volumes come from a plugin over it (devstack.volumes), so `storage_mb` is enforced on
both a container's root filesystem and its data volume.

With `tls=True` it also listens on `tcp://<public address>:<port>` with mutual TLS, from a
throwaway CA; `Dockerd.tls` holds the client's PEM strings in the shape a host record
(and `DockerDriver(tls=...)`) takes them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path

import docker
import docker.errors
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from devstack.netns import Netns, create_netns, netns_named
from devstack.processes import Child, StartupError, free_port
from devstack.volumes import DEFAULT_SIZE_MB, PLUGIN_DIR, EnforcedStorage

START_TIMEOUT_S = 30.0
# Every cluster gets a bridge network of its own: Docker's default pools hold about 30,
# so networks take /24s of 172.16.0.0/12 instead (4096 of them; the engine's namespace
# is its own, so they clash with nothing of the machine's).
DAEMON_CONFIG = {
    "default-address-pools": [{"base": "172.16.0.0/12", "size": 24}],
    # the machine's ends of the private dockerds' links (devstack/netns.py), where the
    # tests' local registry listens over plain HTTP
    "insecure-registries": ["10.214.0.0/16"],
}
STOP_TIMEOUT_S = 20.0
_DOCKER_ERRORS = (docker.errors.DockerException, requests.RequestException)


def find_dockerd() -> str | None:
    return shutil.which("dockerd") or shutil.which("dockerd", path="/usr/sbin:/usr/bin:/sbin")


class Dockerd:
    """One running private dockerd. `url` (unix socket) is what a DockerDriver or a
    DockerClient connects to; `tcp_url` and `tls` are set when started with TLS."""

    def __init__(
        self,
        child: Child,
        data_root: Path,
        run_dir: Path,
        netns: Netns,
        *,
        keep_data: bool,
        tcp_url: str | None,
        tls: dict[str, str] | None,
        storage: EnforcedStorage | None = None,
    ) -> None:
        self.child = child
        self.data_root = data_root
        self.run_dir = run_dir
        self.keep_data = keep_data
        self.netns = netns
        self.url = f"unix://{run_dir / 'docker.sock'}"
        # Where the engine's published ports answer (a host record's public_address).
        self.public_address = netns.address
        self.tcp_url = tcp_url  # tcp://<public address>:<port>, mutual TLS
        self.tls = tls  # PEM strings: ca_cert, client_cert, client_key
        self.storage = storage  # set when sizes are enforced (btrfs and the volume plugin)
        self._stopped = False

    @property
    def machine_address(self) -> str:
        """Where this engine reaches servers of the machine it runs on (a local registry
        listens there): the machine's end of its namespace's link, in a range the
        engine takes as insecure (plain HTTP) registries (DAEMON_CONFIG)."""
        return self.netns.peer_address

    @property
    def pid(self) -> int:
        return self.child.pid

    def alive(self) -> bool:
        return self.child.alive()

    def client(self, timeout: int = 30) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.url, timeout=timeout)

    def log_tail(self, lines: int = 40) -> str:
        return self.child.log_tail(lines)

    def remove_all_containers(self) -> int:
        """Every container of this private engine is Corral's: remove them all."""
        removed = 0
        with contextlib.suppress(*_DOCKER_ERRORS):
            client = self.client(timeout=15)
            try:
                for container in client.containers.list(all=True, sparse=True):
                    with contextlib.suppress(*_DOCKER_ERRORS):
                        container.remove(force=True, v=True)
                        removed += 1
            finally:
                client.close()
        return removed

    def stop(self, *, remove_containers: bool = True) -> None:
        """Remove every container (unless told not to), stop dockerd (SIGTERM, then
        SIGKILL) and clean up; the data root goes too unless it is kept between runs."""
        if self._stopped:
            return
        self._stopped = True
        if remove_containers and self.child.alive():
            self.remove_all_containers()
        self.child.stop()
        if self.storage is not None:
            self.storage.stop(keep_data=self.keep_data)
        _clean_up(self.run_dir, self.data_root)  # the network namespace goes too
        if not self.keep_data:
            shutil.rmtree(self.data_root, ignore_errors=True)

    def _answers_ping(self) -> bool:
        try:
            client = self.client(timeout=2)
        except _DOCKER_ERRORS:
            return False
        try:
            return bool(client.ping())
        except _DOCKER_ERRORS:
            return False
        finally:
            client.close()


def start_dockerd(
    workdir: Path,
    *,
    log_path: Path | None = None,
    run_dir: Path | None = None,
    keep_data: bool = False,
    tls: bool = False,
    enforce_storage: bool = False,
) -> Dockerd:
    """Start a private dockerd with its images in `workdir`/data (and its log in
    `workdir`/dockerd.log unless told), and wait until it answers ping; StartupError
    if it cannot.

    `run_dir` is a fixed directory for an engine that must be found again after a
    crash (`make run`'s): leftovers of an earlier one there are cleaned up, and a live
    one is refused. Without it, a fresh directory in /tmp is made."""
    binary = find_dockerd()
    if binary is None:
        raise StartupError("dockerd is not installed (Debian package docker.io)")
    if os.geteuid() != 0:
        raise StartupError("dockerd needs root")
    data_root = workdir / "data"
    log_path = log_path or workdir / "dockerd.log"
    if run_dir is None:
        run_dir = Path(tempfile.mkdtemp(prefix="dk", dir="/tmp"))
    else:
        _clear_leftovers(run_dir, data_root)
        run_dir.mkdir(mode=0o700, parents=True)
    data_root.mkdir(parents=True, exist_ok=True)
    plugin_dir = run_dir / "plugins"
    plugin_dir.mkdir(exist_ok=True)
    storage = enforced_storage(workdir, data_root, run_dir) if enforce_storage else None
    config = run_dir / "daemon.json"
    # never read /etc/docker/daemon.json
    config.write_text(json.dumps(DAEMON_CONFIG, indent=2) + "\n")
    netns = create_netns()
    (run_dir / _NETNS_FILE).write_text(netns.name)
    command = [
        *netns.enter(),
        *_own_plugin_dir(plugin_dir),
        binary,
        "--config-file", str(config),
        "--data-root", str(data_root),
        "--exec-root", str(_exec_root(run_dir)),
        "--pidfile", str(run_dir / "dockerd.pid"),
        "-H", f"unix://{run_dir / 'docker.sock'}",
        "--ip6tables=false",
    ]  # fmt: skip
    if storage is not None:
        command += storage.dockerd_args()
    tcp_url, client_tls = None, None
    if tls:
        server_files, client_tls = _write_tls_material(run_dir, netns.address)
        tcp_url = f"tcp://{netns.address}:{free_port()}"
        command += [
            "-H", tcp_url,
            "--tlsverify",
            "--tlscacert", server_files["ca_cert"],
            "--tlscert", server_files["cert"],
            "--tlskey", server_files["key"],
        ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    try:
        child = Child("dockerd", command, env, log_path, stop_timeout=STOP_TIMEOUT_S)
    except BaseException:
        if storage is not None:
            storage.stop(keep_data=keep_data)
        raise
    dockerd = Dockerd(
        child,
        data_root,
        run_dir,
        netns,
        keep_data=keep_data,
        tcp_url=tcp_url,
        tls=client_tls,
        storage=storage,
    )
    try:
        child.wait_until(dockerd._answers_ping, f"dockerd to answer ping on {dockerd.url}")
    except BaseException:
        dockerd.stop()
        raise
    return dockerd


_NETNS_FILE = "netns"


def enforced_storage(workdir: Path, data_root: Path, run_dir: Path) -> EnforcedStorage:
    """Mount the btrfs data root and start the volume plugin, named after `run_dir` so
    that dockerds side by side (make run, test sessions) each use their own."""
    tag = hashlib.sha256(str(run_dir.resolve()).encode()).hexdigest()[:12]
    storage = EnforcedStorage(
        workdir, data_root, f"corral-btrfs-{tag}", run_dir / "plugins", DEFAULT_SIZE_MB
    )
    storage.start()
    return storage


def _own_plugin_dir(plugin_dir: Path) -> list[str]:
    """The prefix that runs dockerd in a mount namespace of its own where `plugin_dir`
    is mounted over /run/docker/plugins: it sees its own volume plugin and no other
    dockerd's (devstack/volumes.py, PLUGIN_DIR, says why that matters)."""
    PLUGIN_DIR.mkdir(parents=True, exist_ok=True)
    return [
        "unshare", "--mount", "--propagation", "private", "--",
        "/bin/sh", "-c", 'mount --bind "$1" "$2" && shift 2 && exec "$@"',
        "sh", str(plugin_dir), str(PLUGIN_DIR),
    ]  # fmt: skip


def _exec_root(run_dir: Path) -> Path:
    return run_dir / "x"


def _clear_leftovers(run_dir: Path, data_root: Path) -> None:
    """After a crash of an earlier run: refuse if its dockerd lives, else clean up."""
    pidfile = run_dir / "dockerd.pid"
    if pidfile.exists():
        pid = int(pidfile.read_text().strip() or 0)
        if pid and _is_dockerd(pid):
            raise StartupError(
                f"a dockerd (pid {pid}) already runs in {run_dir}: is another `make run` running?"
            )
    _clean_up(run_dir, data_root)


def _clean_up(run_dir: Path, data_root: Path) -> None:
    _kill_leftovers(_exec_root(run_dir))
    _unmount_under(data_root, run_dir)
    with contextlib.suppress(OSError):
        left = netns_named((run_dir / _NETNS_FILE).read_text().strip())
        if left is not None:
            left.delete()
    shutil.rmtree(run_dir, ignore_errors=True)


def _is_dockerd(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == "dockerd"
    except OSError:
        return False


def _kill_leftovers(exec_root: Path) -> None:
    """After a dockerd crash or SIGKILL: its containerd, shims, and containers.

    Only processes whose command line names this instance's exec root are ours
    (containerd and its shims); a container's init is a child of its shim, and
    killing it ends the container's whole pid namespace.
    """
    marker = str(exec_root).encode()
    ours: set[int] = set()
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command, rest = stat.split("(", 1)[1].rsplit(")", 1)
            parents[int(entry.name)] = int(rest.split()[1])
            if command.startswith(("dockerd", "containerd")) and (
                marker in (entry / "cmdline").read_bytes()
            ):
                ours.add(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    children = {pid for pid, parent in parents.items() if parent in ours and pid not in ours}
    for pid in [*children, *ours]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _unmount_under(*roots: Path) -> None:
    prefixes = [str(root.resolve()) for root in roots]
    try:
        mountinfo = Path("/proc/self/mountinfo").read_text()
    except OSError:
        return
    points = [line.split()[4] for line in mountinfo.splitlines()]
    ours = [p for p in points if any(p == r or p.startswith(r + "/") for r in prefixes)]
    for point in sorted(ours, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)


def _write_tls_material(directory: Path, address: str) -> tuple[dict[str, str], dict[str, str]]:
    """A throwaway CA, a server certificate for `address` and a client certificate.

    Returns the server's file paths (for dockerd) and the client's PEM strings.
    """
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "corral test CA")])
    ca_cert = (
        _certificate_builder(ca_name, ca_name, ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )

    def issue(common_name: str, usage: x509.ObjectIdentifier) -> tuple[str, str]:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        builder = _certificate_builder(subject, ca_name, key.public_key()).add_extension(
            x509.ExtendedKeyUsage([usage]), critical=False
        )
        if usage == ExtendedKeyUsageOID.SERVER_AUTH:
            names = [x509.IPAddress(IPv4Address(address)), x509.DNSName("localhost")]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()

    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM).decode()
    server_cert, server_key = issue("localhost", ExtendedKeyUsageOID.SERVER_AUTH)
    client_cert, client_key = issue("corral", ExtendedKeyUsageOID.CLIENT_AUTH)
    tls_dir = directory / "tls"
    tls_dir.mkdir(mode=0o700)
    server_files = {"ca_cert": ca_pem, "cert": server_cert, "key": server_key}
    paths: dict[str, str] = {}
    for name, pem in server_files.items():
        path = tls_dir / f"{name}.pem"
        path.write_text(pem)
        paths[name] = str(path)
    return paths, {"ca_cert": ca_pem, "client_cert": client_cert, "client_key": client_key}


def _certificate_builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
    )

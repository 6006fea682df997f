"""SSH to a host with a pinned host key: commands as quoted argv, files over SFTP.

One `SshConnection` per driver instance (so per job): the client opens lazily on the
first call, is reused by every later call, and is released by `close()`. Every remote
command line is built by `quote_argv` and nothing else, so no caller-supplied text ever
reaches the remote shell unquoted.

Failures leave as `HostError`: timeouts and refused or dropped connections are
`transient` (a retry may succeed); an unknown or changed host key and a refused login
are not.
"""

from __future__ import annotations

import posixpath
import select
import shlex
import stat
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import NamedTuple

import paramiko

from infra.drivers.ssh.keys import parse_private_key, parse_public_key
from shared import deadline
from shared.errors import HostError

_READ_CHUNK = 65536
_STDERR_KEPT = 4096  # of a streaming command's stderr: the end, for its error message
UNTRUSTED_HOST = "The host's SSH host key is not the pinned one; refusing to connect."


class CommandResult(NamedTuple):
    """What a remote command left behind. Unpacks as `(exit_status, stdout, stderr)`."""

    exit_status: int
    stdout: bytes
    stderr: bytes


class UnknownHostKeyError(paramiko.SSHException):
    """The server offered a host key other than the pinned one."""


class _RejectPolicy(paramiko.MissingHostKeyPolicy):
    """Refuse every host key that was not pinned at construction."""

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        raise UnknownHostKeyError(f"unknown host key {key.get_name()} for {hostname}")


def quote_argv(argv: Sequence[str]) -> str:
    """The one way a remote command line is built: every argument shell-quoted."""
    if not argv:
        raise ValueError("empty command")
    return " ".join(shlex.quote(arg) for arg in argv)


class RemoteStream:
    """A running remote command with its stdin and stdout as a line stream."""

    def __init__(self, channel: paramiko.Channel, timeout: float) -> None:
        self._channel = channel
        self._timeout = timeout
        self._buffer = bytearray()

    def write(self, data: bytes) -> None:
        try:
            self._channel.sendall(data)
        except (OSError, paramiko.SSHException) as exc:
            raise HostError(f"remote stream closed: {exc}", transient=True) from exc

    def readline(self) -> bytes:
        """One line (with its newline), or b"" at end of stream."""
        ends_at = time.monotonic() + deadline.bounded(self._timeout)
        while b"\n" not in self._buffer:
            remaining = ends_at - time.monotonic()
            if remaining <= 0:
                deadline.check()
                raise HostError("remote stream timed out", transient=True)
            self._channel.settimeout(remaining)
            try:
                chunk = self._channel.recv(_READ_CHUNK)
            except TimeoutError as exc:
                deadline.check()
                raise HostError("remote stream timed out", transient=True) from exc
            if not chunk:
                break
            self._buffer += chunk
        end = self._buffer.find(b"\n") + 1 or len(self._buffer)
        line = bytes(self._buffer[:end])
        del self._buffer[:end]
        return line

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> RemoteStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SshConnection:
    """A pinned-key SSH connection to one host, opened on first use."""

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        private_key_pem: str,
        host_key: str,
        *,
        connect_timeout: float = 10.0,
        command_timeout: float = 60.0,
        client_factory: Callable[[], paramiko.SSHClient] = paramiko.SSHClient,
    ) -> None:
        self.host = host
        self.port = port
        self.username = username
        self._private_key_pem = private_key_pem
        try:
            self._host_key = parse_public_key(host_key)
        except ValueError as exc:
            raise HostError(f"pinned host key for {host} is unusable: {exc}") from exc
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self._client_factory = client_factory
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None

    # -- connection ---------------------------------------------------------

    @property
    def _where(self) -> str:
        return f"{self.username}@{self.host}:{self.port}"

    def _transport(self) -> paramiko.Transport:
        client = self._client
        if client is not None:
            transport = client.get_transport()
            if transport is not None and transport.is_active():
                return transport
            self.close()
        client = self._connect()
        self._client = client
        transport = client.get_transport()
        if transport is None:  # pragma: no cover - connect() succeeded
            raise HostError(f"SSH to {self._where} has no transport", transient=True)
        return transport

    def _connect(self) -> paramiko.SSHClient:
        pkey = parse_private_key(self._private_key_pem)
        client = self._client_factory()
        client.set_missing_host_key_policy(_RejectPolicy())
        entry = self.host if self.port == 22 else f"[{self.host}]:{self.port}"
        client.get_host_keys().add(entry, self._host_key.get_name(), self._host_key)
        try:
            client.connect(
                self.host,
                port=self.port,
                username=self.username,
                pkey=pkey,
                timeout=self.connect_timeout,
                banner_timeout=self.connect_timeout,
                auth_timeout=self.connect_timeout,
                channel_timeout=self.connect_timeout,
                allow_agent=False,
                look_for_keys=False,
            )
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise HostError(
                f"host key of {self.host}:{self.port} changed: got {exc.key.get_name()} "
                f"{exc.key.get_fingerprint().hex()}; refusing to connect",
                code="host_untrusted",
                public=UNTRUSTED_HOST,
            ) from exc
        except UnknownHostKeyError as exc:
            client.close()
            raise HostError(
                f"{exc}; refusing to connect", code="host_untrusted", public=UNTRUSTED_HOST
            ) from exc
        except paramiko.AuthenticationException as exc:
            client.close()
            raise HostError(f"SSH login to {self._where} refused: {exc}") from exc
        except (paramiko.SSHException, OSError, EOFError) as exc:
            # Timeouts, refused connections, dropped banners: a retry may succeed.
            client.close()
            raise HostError(f"SSH to {self._where} failed: {exc}", transient=True) from exc
        return client

    def close(self) -> None:
        """Release the SFTP session and the connection; the next call reconnects."""
        if self._sftp is not None:
            with suppress(OSError, paramiko.SSHException):
                self._sftp.close()
            self._sftp = None
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> SshConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open_session(self, argv: Sequence[str]) -> paramiko.Channel:
        command = quote_argv(argv)
        transport = self._transport()
        try:
            channel = transport.open_session(timeout=self.connect_timeout)
            channel.exec_command(command)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self.close()
            raise HostError(
                f"cannot run a command on {self._where}: {exc}", transient=True
            ) from exc
        return channel

    # -- commands -----------------------------------------------------------

    def run(
        self,
        argv: Sequence[str],
        timeout: float | None = None,
        *,
        stdin: bytes | None = None,
    ) -> CommandResult:
        """Run `argv` on the host and wait for it; `(exit_status, stdout, stderr)`.

        A command still running after `timeout` seconds is abandoned (its channel
        closed) and reported as a transient HostError.
        """
        limit = deadline.bounded(self.command_timeout if timeout is None else timeout)
        ends_at = time.monotonic() + limit
        channel = self._open_session(argv)
        stdout, stderr = bytearray(), bytearray()
        try:
            if stdin:
                channel.sendall(stdin)
            channel.shutdown_write()
            while True:
                while channel.recv_ready():
                    stdout += channel.recv(_READ_CHUNK)
                while channel.recv_stderr_ready():
                    stderr += channel.recv_stderr(_READ_CHUNK)
                if channel.eof_received and not (
                    channel.recv_ready() or channel.recv_stderr_ready()
                ):
                    break
                remaining = ends_at - time.monotonic()
                if remaining <= 0:
                    deadline.check()  # the job's time is up, not the command's
                    raise HostError(
                        f"command {argv[0]!r} on {self._where} timed out after {limit:g}s",
                        transient=True,
                    )
                select.select([channel], [], [], min(remaining, 1.0))
            remaining = ends_at - time.monotonic()
            if not channel.status_event.wait(max(remaining, 0.0)):
                raise HostError(
                    f"command {argv[0]!r} on {self._where} gave no exit status", transient=True
                )
            return CommandResult(channel.recv_exit_status(), bytes(stdout), bytes(stderr))
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self.close()
            raise HostError(f"command on {self._where} failed: {exc}", transient=True) from exc
        finally:
            channel.close()

    def check(self, argv: Sequence[str], timeout: float | None = None) -> bytes:
        """Run `argv`; its stdout, or a HostError carrying its stderr when it fails."""
        result = self.run(argv, timeout)
        if result.exit_status != 0:
            detail = result.stderr.decode(errors="replace").strip()[-500:]
            raise HostError(f"{argv[0]} exited {result.exit_status} on {self.host}: {detail}")
        return result.stdout

    def read_stream(self, argv: Sequence[str], timeout: float | None = None) -> Iterator[bytes]:
        """Run `argv` and yield its stdout chunk by chunk as it comes, never holding it
        whole (each read bounded by `timeout`); a HostError with its stderr when it
        exits non-zero. Closing the iterator early closes the channel."""
        limit = self.command_timeout if timeout is None else timeout
        stderr = bytearray()
        with self._streaming(argv, limit, "sent nothing") as channel:
            channel.shutdown_write()
            while chunk := channel.recv(_READ_CHUNK):
                _keep_stderr(channel, stderr)
                yield chunk
            self._exited(channel, argv, limit, stderr)

    def feed(
        self, argv: Sequence[str], chunks: Iterable[bytes], timeout: float | None = None
    ) -> None:
        """Run `argv` with `chunks` streamed to its stdin (each write bounded by
        `timeout`); a HostError with its stderr when it exits non-zero."""
        limit = self.command_timeout if timeout is None else timeout
        stderr = bytearray()
        with self._streaming(argv, limit, "took no input") as channel:
            for chunk in chunks:
                try:
                    channel.sendall(chunk)
                except OSError:
                    if channel.exit_status_ready():  # it stopped reading: say why
                        self._exited(channel, argv, limit, stderr)
                    raise
                _keep_stderr(channel, stderr)
            channel.shutdown_write()
            self._exited(channel, argv, limit, stderr)

    @contextmanager
    def _streaming(
        self, argv: Sequence[str], limit: float, stalled: str
    ) -> Iterator[paramiko.Channel]:
        """A channel running `argv` whose reads and writes wait at most `limit`; its
        failures as transient HostErrors (`stalled` says what a timeout means)."""
        channel = self._open_session(argv)
        try:
            channel.settimeout(limit)
            yield channel
        except TimeoutError as exc:
            raise HostError(
                f"command {argv[0]!r} on {self._where} {stalled} for {limit:g}s", transient=True
            ) from exc
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self.close()
            raise HostError(f"command on {self._where} failed: {exc}", transient=True) from exc
        finally:
            channel.close()

    def _exited(
        self, channel: paramiko.Channel, argv: Sequence[str], limit: float, stderr: bytearray
    ) -> None:
        """Wait for a streaming command's exit; a HostError with its stderr unless 0."""
        if not channel.status_event.wait(limit):
            raise HostError(
                f"command {argv[0]!r} on {self._where} gave no exit status", transient=True
            )
        status = channel.recv_exit_status()
        _keep_stderr(channel, stderr)
        if status != 0:
            detail = stderr.decode(errors="replace").strip()[-500:]
            raise HostError(f"{argv[0]} exited {status} on {self.host}: {detail}")

    def stream(self, argv: Sequence[str], timeout: float | None = None) -> RemoteStream:
        """Start `argv` and talk to it line by line (each read bounded by `timeout`)."""
        limit = deadline.bounded(self.command_timeout if timeout is None else timeout)
        return RemoteStream(self._open_session(argv), limit)

    # -- files --------------------------------------------------------------

    def _sftp_client(self) -> paramiko.SFTPClient:
        self._transport()
        if self._sftp is None:
            assert self._client is not None
            try:
                self._sftp = self._client.open_sftp()
            except (paramiko.SSHException, OSError, EOFError) as exc:
                self.close()
                raise HostError(f"SFTP to {self._where} failed: {exc}", transient=True) from exc
            self._sftp.get_channel().settimeout(self.command_timeout)  # type: ignore[union-attr]
        return self._sftp

    def _sftp_error(self, action: str, path: str, exc: Exception) -> HostError:
        if isinstance(exc, (paramiko.SSHException, EOFError, TimeoutError)):
            self.close()
            return HostError(f"SFTP {action} {path} on {self.host}: {exc}", transient=True)
        return HostError(f"SFTP {action} {path} on {self.host}: {exc}")

    def put_bytes(self, remote_path: str, data: bytes, mode: int = 0o600) -> None:
        """Write a file atomically (a temporary name in the same folder, then rename)."""
        sftp = self._sftp_client()
        folder, name = posixpath.split(remote_path)
        temporary = posixpath.join(folder, f".{name}.{uuid.uuid4().hex}.tmp")
        try:
            with sftp.open(temporary, "wb") as handle:
                handle.chmod(mode)
                handle.write(data)
            sftp.posix_rename(temporary, remote_path)
        except (OSError, paramiko.SSHException, EOFError) as exc:
            with suppress(OSError, paramiko.SSHException, EOFError):
                sftp.remove(temporary)
            raise self._sftp_error("write", remote_path, exc) from exc

    def get_bytes(self, remote_path: str) -> bytes:
        """A file's content. Raises FileNotFoundError when it does not exist."""
        sftp = self._sftp_client()
        try:
            with sftp.open(remote_path, "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            raise
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise self._sftp_error("read", remote_path, exc) from exc

    def put_file(self, local_path: str, remote_path: str, mode: int = 0o600) -> None:
        with open(local_path, "rb") as handle:
            self.put_bytes(remote_path, handle.read(), mode)

    def get_file(self, remote_path: str, local_path: str) -> None:
        data = self.get_bytes(remote_path)
        with open(local_path, "wb") as handle:
            handle.write(data)

    def remove(self, remote_path: str) -> None:
        """Delete a file. Missing is success."""
        sftp = self._sftp_client()
        try:
            sftp.remove(remote_path)
        except FileNotFoundError:
            return
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise self._sftp_error("remove", remote_path, exc) from exc

    def mkdir(self, remote_path: str, mode: int = 0o700) -> bool:
        """Create a folder; False when it existed already."""
        sftp = self._sftp_client()
        try:
            sftp.mkdir(remote_path, mode)
            return True
        except (OSError, paramiko.SSHException, EOFError) as exc:
            try:
                if stat.S_ISDIR(sftp.stat(remote_path).st_mode or 0):
                    return False
            except (OSError, paramiko.SSHException, EOFError):
                pass
            raise self._sftp_error("mkdir", remote_path, exc) from exc

    def rmdir(self, remote_path: str) -> None:
        """Remove an empty folder. Missing is success."""
        sftp = self._sftp_client()
        try:
            sftp.rmdir(remote_path)
        except FileNotFoundError:
            return
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise self._sftp_error("rmdir", remote_path, exc) from exc

    def listdir(self, remote_path: str) -> list[str]:
        """Names in a folder; empty when the folder does not exist."""
        sftp = self._sftp_client()
        try:
            return sorted(sftp.listdir(remote_path))
        except FileNotFoundError:
            return []
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise self._sftp_error("list", remote_path, exc) from exc

    def mtime(self, remote_path: str) -> float | None:
        """A path's modification time, or None when it does not exist."""
        sftp = self._sftp_client()
        try:
            return float(sftp.stat(remote_path).st_mtime or 0)
        except FileNotFoundError:
            return None
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise self._sftp_error("stat", remote_path, exc) from exc


def _keep_stderr(channel: paramiko.Channel, kept: bytearray) -> None:
    """Read what stderr has now (a command blocked on a full stderr would stall), and
    keep its end."""
    while channel.recv_stderr_ready():
        kept += channel.recv_stderr(_READ_CHUNK)
    del kept[:-_STDERR_KEPT]

"""The QEMU Machine Protocol client QemuDriver speaks to a running VM's monitor.

The session runs over a `RemoteStream`: `socat` on the host connects to the VM's
`qmp.sock` (see infra.drivers.qemu.driver for why not a direct channel or a TCP port).
"""

from __future__ import annotations

import json
from contextlib import suppress
from typing import Any

from infra.drivers.ssh.connection import RemoteStream
from shared.errors import HostError


class QmpSession:
    """One QMP session over a remote `socat` stream."""

    def __init__(self, stream: RemoteStream) -> None:
        self._stream = stream
        greeting = self._message()
        if "QMP" not in greeting:
            raise HostError("QMP socket did not greet", transient=True)
        self.execute("qmp_capabilities")

    def _message(self) -> dict[str, Any]:
        line = self._stream.readline()
        if not line:
            raise HostError("QMP connection closed", transient=True)
        try:
            message = json.loads(line)
        except ValueError as exc:
            raise HostError(f"QMP sent garbage: {line[:200]!r}", transient=True) from exc
        if not isinstance(message, dict):
            raise HostError("QMP sent a non-object", transient=True)
        return message

    def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        request: dict[str, Any] = {"execute": command}
        if arguments:
            request["arguments"] = arguments
        self._stream.write(json.dumps(request).encode() + b"\n")
        while True:
            message = self._message()
            if "return" in message:
                return message["return"]
            if "error" in message:
                desc = message["error"].get("desc", "unknown error")
                raise HostError(f"QMP {command} failed: {desc}")

    def quit(self) -> None:
        """`quit`: QEMU may close the socket before it answers, so end of stream is fine."""
        self._stream.write(b'{"execute": "quit"}\n')
        with suppress(HostError):
            while self._stream.readline():
                pass

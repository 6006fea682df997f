"""SSH keys for SshConnection: reading and writing OpenSSH key text, and fetching a host's key.

A host's key is pinned in its OpenSSH one-line form (`ssh-ed25519 AAAA...`); `scan_host_key`
fetches it for an operator to confirm at registration.
"""

from __future__ import annotations

import base64
import binascii
import io
import socket

import paramiko

from shared.errors import HostError


def parse_public_key(text: str) -> paramiko.PKey:
    """A public key from its OpenSSH one-line form (`ssh-ed25519 AAAA... [comment]`)."""
    parts = text.split()
    if len(parts) < 2:
        raise ValueError("expected '<type> <base64> [comment]'")
    try:
        blob = base64.b64decode(parts[1], validate=True)
        key = paramiko.PKey.from_type_string(parts[0], blob)
    except (binascii.Error, paramiko.SSHException) as exc:
        raise ValueError(f"unreadable public key: {exc}") from exc
    if key.get_name() != parts[0]:
        raise ValueError("public key type does not match its data")
    return key


def parse_private_key(pem: str) -> paramiko.PKey:
    """A private key (OpenSSH or PEM, unencrypted) of any type paramiko speaks."""
    for key_class in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return key_class.from_private_key(io.StringIO(pem))
        except (paramiko.SSHException, ValueError):
            continue
    raise HostError("the host's private key is not a readable unencrypted key")


def format_public_key(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.get_base64()}"


def scan_host_key(host: str, port: int = 22, timeout: float = 10.0) -> str:
    """Fetch the key a host presents, for an operator to confirm at registration.

    Returns the OpenSSH one-line form (`ssh-ed25519 AAAA...`), which is what
    `SshConnection(host_key=...)` pins later.
    """
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise HostError(f"cannot reach {host}:{port}: {exc}", transient=True) from exc
    transport = paramiko.Transport(sock)
    transport.banner_timeout = timeout
    try:
        transport.start_client(timeout=timeout)
        return format_public_key(transport.get_remote_server_key())
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise HostError(f"no SSH host key from {host}:{port}: {exc}", transient=True) from exc
    finally:
        transport.close()

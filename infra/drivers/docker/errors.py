"""Docker SDK, requests, urllib3 and paramiko errors, re-raised as HostError: transient
when a retry may succeed (connection problems, 5xx), permanent otherwise."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager

import docker.errors
import paramiko
import requests
import urllib3.exceptions

from shared.errors import HostError, image_missing

RETRYABLE_CLIENT_STATUSES = frozenset({408, 429})
LIBRARY_ERRORS: tuple[type[BaseException], ...] = (
    docker.errors.DockerException,
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    paramiko.SSHException,
    OSError,
)


@contextmanager
def host_errors(address: str, action: str, *, image: str | None = None) -> Iterator[None]:
    """Re-raise every library error as HostError, transient when a retry may succeed."""
    try:
        yield
    except HostError:
        raise
    except LIBRARY_ERRORS as exc:
        raise host_error(address, action, exc, image) from exc


def host_error(address: str, action: str, exc: BaseException, image: str | None) -> HostError:
    where = f"docker host {address}"
    if isinstance(exc, docker.errors.ImageNotFound) and image is not None:
        return image_missing(f"image '{image}' is not present on {where}", image)
    if isinstance(exc, docker.errors.APIError):
        status = exc.status_code or 0
        detail = exc.explanation or str(exc)
        transient = status >= 500 or status in RETRYABLE_CLIENT_STATUSES
        return HostError(f"{action} on {where} failed ({status}): {detail}", transient=transient)
    if isinstance(exc, paramiko.AuthenticationException | paramiko.BadHostKeyException):
        return HostError(f"{action} on {where} failed: ssh: {exc}")
    if isinstance(exc, paramiko.SSHException) and "known_hosts" in str(exc):
        return HostError(f"{action} on {where} failed: ssh host key not trusted: {exc}")
    transient = is_connection_problem(exc)
    reason = "unreachable" if transient else "failed"
    return HostError(f"{action} on {where} {reason}: {exc}", transient=transient)


def is_connection_problem(exc: BaseException) -> bool:
    """Timeouts, refused or missing sockets, ssh transport drops: anywhere in the cause chain.

    A failed TLS handshake (untrusted certificate, no client certificate) is not one:
    retrying cannot fix it.
    """
    chain = list(_cause_chain(exc))
    if any(isinstance(link, requests.exceptions.SSLError | ssl.SSLError) for link in chain):
        return False
    return any(
        isinstance(
            link,
            requests.ConnectionError
            | requests.Timeout
            | urllib3.exceptions.HTTPError
            | paramiko.SSHException
            | OSError,
        )
        for link in chain
    )


def _cause_chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__

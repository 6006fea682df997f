"""Connecting DockerDriver to its engine: the SDK client, and mutual TLS from PEM strings.

The SDK takes TLS material only as file paths, so the PEM strings are written to a private
folder that the driver owns (and removes when it closes).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import docker.constants
import docker.errors
import docker.tls
import requests

from shared import deadline
from shared.errors import HostError


def connect(client_factory: Callable[..., Any], address: str, tls: Any, timeout: float) -> Any:
    """A DockerClient for `address` (`tls` is a TLSConfig, or False for none)."""
    # The SDK asks the engine for its version inside its constructor: within the job's
    # deadline too. The client keeps `timeout` for its later requests.
    new_client = partial(
        client_factory, base_url=address, tls=tls, timeout=deadline.bounded(timeout)
    )
    if tls is False:
        return bounded_by_deadline(new_client(), timeout)
    # requests lets REQUESTS_CA_BUNDLE override a session's CA file, which would swap
    # the host's own CA for the system bundle. The session must ignore the environment,
    # but the SDK asks for the API version inside its constructor, before we can say so:
    # ask first with a probe client, then build the real one with that version.
    probe = new_client(version=docker.constants.MINIMUM_DOCKER_API_VERSION)
    try:
        probe.api.trust_env = False
        version = str(probe.api.version(api_version=False)["ApiVersion"])
    finally:
        probe.close()
    client = new_client(version=version)
    client.api.trust_env = False
    return bounded_by_deadline(client, timeout)


def bounded_by_deadline(client: Any, timeout: float) -> Any:
    """`client` (whose requests wait `timeout` seconds) with every engine request
    bounded by the running job's deadline (shared.deadline): none starts past it, none
    waits longer than what is left of it, and one that fails once it passed raises
    JobTimedOut."""
    api = client.api
    api.timeout = timeout
    request = api.request

    def bounded_request(method: str, url: str, **kwargs: Any) -> Any:
        timeout = kwargs.get("timeout")
        if isinstance(timeout, tuple):
            kwargs["timeout"] = tuple(deadline.bounded(part) for part in timeout)
        else:
            kwargs["timeout"] = deadline.bounded(timeout)
        try:
            return request(method, url, **kwargs)
        except requests.exceptions.RequestException:
            deadline.check()
            raise

    api.request = bounded_request
    return client


def tls_config(tls: Mapping[str, str], tls_dir: str, address: str) -> Any:
    """A TLSConfig from the PEM strings, written as files into `tls_dir` (a private folder
    the caller made and removes): the SDK only takes file paths."""
    paths: dict[str, str] = {}
    for key in ("ca_cert", "client_cert", "client_key"):
        if tls.get(key):
            path = os.path.join(tls_dir, f"{key}.pem")
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as pem:
                pem.write(tls[key])
            paths[key] = path
    cert_path, key_path = paths.get("client_cert"), paths.get("client_key")
    if (cert_path is None) != (key_path is None):
        raise HostError(
            f"invalid TLS material for {address}: client_cert and client_key go together"
        )
    try:
        return docker.tls.TLSConfig(
            client_cert=(cert_path, key_path) if cert_path and key_path else None,
            ca_cert=paths.get("ca_cert"),
            verify=True,
        )
    except docker.errors.TLSParameterError as exc:
        raise HostError(f"invalid TLS material for {address}: {exc}") from exc

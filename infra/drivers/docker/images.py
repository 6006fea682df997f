"""Images on one Docker Engine: pull one that is missing (telling how far it got), and
remove one. The engine talks to the registry; these calls turn what it answers into
errors a tenant can act on (refused, missing, unreachable) and a short progress text."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import docker.errors
import requests

from shared.errors import HostError
from shared.images import RegistryAuth, parse_image

ProgressSink = Callable[[str], None]

# What engines and registries say, in their own words, for each kind of refusal.
_DENIED = ("unauthorized", "authentication required", "denied", "no basic auth credentials")
_MISSING = ("manifest unknown", "not found", "does not exist", "name unknown")
_UNREACHABLE = (
    "timeout",
    "deadline exceeded",
    "connection refused",
    "no such host",
    "network is unreachable",
    "server gave http response to https client",
)
_LAYER_DONE = ("Download complete", "Pull complete", "Already exists")


def has_image(api: Any, image: str) -> bool:
    try:
        api.inspect_image(image)
    except docker.errors.ImageNotFound:
        return False
    return True


def pull(
    api: Any, image: str, auth: RegistryAuth | None, progress: ProgressSink, where: str
) -> None:
    """Pull `image` through the engine (`where` names it for operators), calling
    `progress` with a short text as layers arrive. HostError with a tenant-safe message
    when the registry refuses, does not have the image, or cannot be reached in time."""
    ref = parse_image(image)
    auth_config = {"username": auth.username, "password": auth.password} if auth else None
    progress(f"pulling {image}")
    try:
        events = api.pull(
            ref.repository, tag=ref.pull_tag, stream=True, decode=True, auth_config=auth_config
        )
        _follow(image, events, progress, where)
    except docker.errors.APIError as exc:
        raise pull_error(image, str(exc.explanation or exc), where) from exc
    except requests.Timeout as exc:
        raise pull_error(image, f"timeout: {exc}", where) from exc
    if not has_image(api, image):
        raise pull_error(image, "the engine finished the pull without the image", where)
    progress(f"pulled {image}")


def _follow(
    image: str, events: Iterable[Mapping[str, Any]], progress: ProgressSink, where: str
) -> None:
    layers: dict[str, tuple[int, int]] = {}
    for event in events:
        if "error" in event:
            raise pull_error(image, str(event.get("error")), where)
        layer, status = str(event.get("id") or ""), str(event.get("status") or "")
        detail = event.get("progressDetail") or {}
        if layer and detail.get("total"):
            layers[layer] = (int(detail.get("current") or 0), int(detail["total"]))
        elif layer and status in _LAYER_DONE and layer in layers:
            layers[layer] = (layers[layer][1], layers[layer][1])
        total = sum(t for _, t in layers.values())
        if total:
            done = sum(c for c, _ in layers.values())
            progress(f"pulling {image}: {min(100, done * 100 // total)}% of {len(layers)} layers")


def pull_error(image: str, detail: str, where: str) -> HostError:
    """The HostError for a failed pull, classified by what the engine said."""
    said = detail.lower()
    operator = f"pull of {image} on {where} failed: {detail}"
    if any(word in said for word in _UNREACHABLE):
        return HostError(
            operator,
            code="registry_unreachable",
            public=f"The registry of image '{image}' could not be reached in time.",
        )
    if any(word in said for word in _DENIED):
        return HostError(
            operator,
            code="registry_denied",
            public=f"The registry refused image '{image}': its credentials are missing or wrong.",
        )
    if any(word in said for word in _MISSING):
        return HostError(
            operator,
            code="image_not_found",
            public=f"Image '{image}' does not exist in its registry.",
        )
    return HostError(operator, code="image_pull_failed", public=f"Pulling '{image}' failed.")


def remove(api: Any, image: str) -> bool:
    """Remove `image` from the engine; False when it was not there."""
    try:
        api.remove_image(image)
    except docker.errors.ImageNotFound:
        return False
    return True

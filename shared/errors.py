"""The error taxonomy. Every error leaves the API as one envelope:

    {"error": {"code": "...", "message": "..."}}

Codes and statuses follow the Runtime Clusters API; codes marked *new* are
Corral's own additions, documented in the README.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


class CorralError(Exception):
    """Base of every error Corral reports to a caller."""

    code: ClassVar[str] = "server_error"
    status: ClassVar[int] = 500
    default_message: ClassVar[str] = "Unexpected backend error. Retry later."

    def __init__(self, message: str | None = None, *, details: Any = None) -> None:
        self.message = message or self.default_message
        self.details = details
        super().__init__(self.message)

    def envelope(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return {"error": body}

    def headers(self) -> dict[str, str]:
        """HTTP headers that go with the envelope."""
        return {}


class Unauthorized(CorralError):
    code, status = "unauthorized", 401
    default_message = "Missing or invalid bearer token."


class InvalidCluster(CorralError):
    code, status = "invalid_cluster", 403
    default_message = "Cluster is not active."


class InvalidInput(CorralError):
    code, status = "invalid_input", 400
    default_message = "Request body failed validation."


class BelowMinimum(CorralError):
    code, status = "below_minimum", 400
    default_message = "An allocation field is below its minimum."


class EggNotAllowed(CorralError):
    code, status = "egg_not_allowed", 400
    default_message = "Egg not in the cluster whitelist."


class CapacityExceeded(CorralError):
    code, status = "capacity_exceeded", 409
    default_message = "Not enough remaining resources in the cluster pool."


class DatabaseHostFull(CapacityExceeded):
    """A database host has no slot left: placement tries the next host (clients see
    `capacity_exceeded` only when every host is full)."""


class ContainerLimitReached(CorralError):
    code, status = "container_limit_reached", 409
    default_message = "Cluster already has the maximum number of containers."


class ActionNotAllowed(CorralError):
    code, status = "action_not_allowed", 409
    default_message = "Container state forbids this action."


class NotFound(CorralError):
    code, status = "not_found", 404
    default_message = "Not found."


class Forbidden(CorralError):
    code, status = "forbidden", 403
    default_message = "Caller lacks permission for this resource."


class ServerError(CorralError):
    code, status = "server_error", 500


class MethodNotAllowed(CorralError):
    """*new*: the route exists but not with this HTTP method."""

    code, status = "method_not_allowed", 405
    default_message = "Method not allowed on this route."


class PayloadTooLarge(CorralError):
    """*new*: the request body is larger than Corral accepts."""

    code, status = "payload_too_large", 413
    default_message = "Request body is too large."


class Conflict(CorralError):
    """*new*: the resource exists already or changed under the request; re-read and retry."""

    code, status = "conflict", 409
    default_message = "The resource changed or already exists."


class IdempotencyKeyReused(CorralError):
    """*new*: the Idempotency-Key was sent before with another method, path or body."""

    code, status = "idempotency_key_reused", 409
    default_message = (
        "This Idempotency-Key was used for a different request; use a new key for a new request."
    )


class KeyLimitReached(CorralError):
    """*new*: the cluster already holds its maximum number of API keys."""

    code, status = "key_limit_reached", 409
    default_message = "Cluster already has the maximum number of API keys."


class PlanBelowUsage(CorralError):
    """*new*: a plan change would put a limit below what the cluster uses now."""

    code, status = "plan_below_usage", 409
    default_message = "The new plan is below what the cluster uses now."


class HostInUse(CorralError):
    """*new*: the host still holds workloads; drain and empty it, or force."""

    code, status = "host_in_use", 409
    default_message = "The host still holds workloads."


class PortRangeConflict(CorralError):
    """*new*: a host's port range overlaps another's at the same public address, or a
    change of it would leave out ports that workloads hold."""

    code, status = "port_range_conflict", 409
    default_message = "The port range conflicts with ports in use."


class ImageInUse(CorralError):
    """*new*: a workload on the host runs the image the operator asked to remove."""

    code, status = "image_in_use", 409
    default_message = "A workload on the host uses the image."


class NoHostAvailable(CorralError):
    """*new*: no ready host can take the workload; the message says why."""

    code, status = "no_host_available", 409
    default_message = "No ready host has room for this workload."


class ServiceUnavailable(CorralError):
    """*new*: a dependency (table, queue, host) did not answer in time."""

    code, status = "service_unavailable", 503
    default_message = "A backend dependency is unavailable. Retry later."


class HostTimeout(CorralError):
    """*new*: the workload's host did not answer in time (logs are read from the host
    on request); retry."""

    code, status = "host_timeout", 504
    default_message = "The container's host did not answer in time. Retry later."


class HostUnreachable(CorralError):
    """*new*: a host being registered did not answer (003's POST /api/hosts with
    trust_on_first_use reads its SSH host key first)."""

    code, status = "host_unreachable", 502
    default_message = "The host did not answer."


class TooManyRequests(CorralError):
    """*new*: the API key made more requests than its rate limit allows, or already
    holds as many waits and log follows open as it may; `Retry-After` says when to
    try again."""

    code, status = "too_many_requests", 429
    default_message = "This API key holds too many waits and log follows open at once."

    def __init__(self, retry_after_seconds: int, message: str | None = None) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_seconds)}


@dataclass(frozen=True)
class Failure:
    """Why an operation failed. `code` and `message` are the tenant's (plain words, no
    host names, addresses or library text); `detail` is the operator's: the host's own
    words, shown only on operator routes and in the worker log."""

    code: str
    message: str
    detail: str | None = None


HOST_FAILED = "The host could not carry out the operation. The operator has the details."
HOST_UNREACHABLE = "The host did not answer, even after retries. The operator has the details."


class HostError(Exception):
    """Raised by host drivers. `transient` errors are retried by the job runner.

    The message is the operator's detail (it may name addresses, paths, library
    errors); tenants see `public` under `code` instead, a plain message by default."""

    def __init__(
        self,
        message: str,
        *,
        transient: bool = False,
        code: str | None = None,
        public: str | None = None,
    ) -> None:
        super().__init__(message)
        self.transient = transient
        self.code = code or ("host_unreachable" if transient else "host_error")
        self.public = public or (HOST_UNREACHABLE if transient else HOST_FAILED)

    def failure(self) -> Failure:
        return Failure(self.code, self.public, str(self))


IMAGE_MISSING = "image_missing"


def image_missing(detail: str, image: str) -> HostError:
    """A driver asked to create a workload from an image its host does not have."""
    return HostError(
        detail, code=IMAGE_MISSING, public=f"Image '{image}' is not present on the host."
    )


def workload_missing(detail: str) -> HostError:
    """A driver asked to act on a workload its host does not have."""
    return HostError(detail, code="missing", public="The container is missing on its host.")

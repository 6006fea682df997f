"""Images on hosts, for workers: the registry credentials of an egg opened for one
pull, the progress a pull writes on its operation, and the operators' own image
operations (a pre-pull, a removal) on one host."""

from __future__ import annotations

import logging
import time

from infra.drivers.base import ImagePuller
from shared.errors import CorralError, Failure, HostError, NotFound
from shared.images import RegistryAuth
from shared.models import Egg, Operation
from shared.sealing import SealingError, unseal
from shared.states import OperationKind
from workers import context

log = logging.getLogger("corral.images")

PROGRESS_EVERY_S = 1.0


def registry_auth(egg: Egg) -> RegistryAuth | None:
    """The egg's registry credentials, opened for this pull (never stored opened)."""
    if egg.registry_auth is None:
        return None
    key = context.current().settings.secret_key
    try:
        if key is None:
            raise SealingError("CORRAL_SECRET_KEY is not set on this worker")
        password = unseal(key, egg.registry_auth.sealed_password)
    except SealingError as exc:
        raise HostError(
            f"cannot open the registry credentials of egg {egg.id}: {exc}",
            code="registry_auth_unreadable",
            public="The registry credentials of the container's egg cannot be read; "
            "the operator must set them again.",
        ) from exc
    return RegistryAuth(egg.registry_auth.username, password)


class ProgressReport:
    """Writes an operation's `progress`, at most once per PROGRESS_EVERY_S (and the
    last text when it changes to say it finished): a pull reports many events."""

    def __init__(self, op: Operation) -> None:
        self._op = op
        self._written_at = 0.0
        self._last = ""

    def __call__(self, text: str) -> None:
        now = time.monotonic()
        finished = text.startswith("pulled ")
        if text == self._last or (now - self._written_at < PROGRESS_EVERY_S and not finished):
            return
        ctx = context.current()
        try:
            ctx.repo.operations.set_progress(self._op, text[:200], ctx.clock())
        except CorralError:
            return  # finished or superseded meanwhile: nothing to tell
        self._written_at, self._last = now, text


def run_image_operation(ctx: context.WorkerContext, op: Operation, *, retries_left: int) -> str:
    """Carry out an operator's image operation on its host; returns its final status.
    Raises a transient HostError while retries are left (rq retries the job)."""
    op = ctx.repo.operations.mark_running(op, ctx.clock())
    try:
        _carry_out(ctx, op)
        failure = None
    except HostError as exc:
        if exc.transient and retries_left > 0:
            raise
        log.warning("image operation %s failed: %s", op.id, exc)
        failure = exc.failure()
    except NotFound as exc:
        failure = Failure("not_found", exc.message)
    ctx.repo.operations.finish(op, failure, ctx.clock())
    final = "failed" if failure else "succeeded"
    ctx.jobs.notify_finished(op.id, final)
    return final


def _carry_out(ctx: context.WorkerContext, op: Operation) -> None:
    image, host_id = op.params.image, op.params.host_id
    if image is None or host_id is None:
        raise ValueError(f"image operation {op.id} has no image and host")
    driver = ctx.drivers.for_host(ctx.repo.hosts.get(host_id))
    if not isinstance(driver, ImagePuller):
        raise HostError(f"host {host_id} does not run images", code="host_not_docker")
    if op.kind == OperationKind.IMAGE_PULL:
        egg = ctx.repo.eggs.get(op.params.egg_id) if op.params.egg_id else None
        auth = registry_auth(egg) if egg is not None else None
        driver.pull_if_missing(image, auth, ProgressReport(op))
        return
    if driver.image_in_use(image):
        raise HostError(
            f"image {image} is used by a container on host {host_id}",
            code="image_in_use",
            public=f"Image '{image}' is used by a container on the host.",
        )
    driver.remove_image(image)

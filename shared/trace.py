"""The ids that tie a client's call to the work it caused: the request id (the
client's `X-Request-Id`, or one made up) and the operation id (= its job's id). The
API sets them per request, the queue carries the request id in the job's meta, and
the worker sets both while it runs the job; every log line carries them."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

request_id: ContextVar[str | None] = ContextVar("corral_request_id", default=None)
operation_id: ContextVar[str | None] = ContextVar("corral_operation_id", default=None)
job_id: ContextVar[str | None] = ContextVar("corral_job_id", default=None)

# What a client may send as its request id: short, printable, nothing a log could
# mistake for structure. Anything else is replaced by a new id.
_ACCEPTED = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def accepted_request_id(sent: str | None) -> str:
    """The client's request id when it is acceptable, else a new one."""
    if sent and _ACCEPTED.match(sent):
        return sent
    return uuid.uuid4().hex

"""The pieces behind logs and metrics: request ids, the two log formats, and how a
periodic job's report becomes counts."""

from __future__ import annotations

import contextvars
import json
import logging
from collections.abc import Callable

import pytest

from infra.logs import JsonFormatter, TextFormatter
from infra.metrics import periodic_counts
from shared import trace


def record(message: str, **extra: object) -> logging.LogRecord:
    made = logging.makeLogRecord({"name": "corral.test", "levelname": "INFO", "msg": message})
    for name, value in extra.items():
        setattr(made, name, value)
    return made


@pytest.mark.parametrize("sent", ["abc", "client-42.a", "a:b_c-d.e", "x" * 128])
def test_a_plain_request_id_is_kept(sent: str) -> None:
    assert trace.accepted_request_id(sent) == sent


@pytest.mark.parametrize("sent", [None, "", "x" * 129, "has space", 'quote"', "é", "a\nb"])
def test_anything_else_gets_a_new_id(sent: str | None) -> None:
    made = trace.accepted_request_id(sent)
    assert made != sent and len(made) == 32 and int(made, 16) >= 0


def in_a_fresh_context(make: Callable[[], str]) -> str:
    """Run `make` with no id set (an earlier test may have left one in this thread)."""

    def fresh() -> str:
        for var in (trace.request_id, trace.operation_id, trace.job_id):
            var.set(None)
        return make()

    return contextvars.copy_context().run(fresh)


def test_a_json_line_carries_the_ids_and_the_extra_fields() -> None:
    def made() -> str:
        trace.request_id.set("r-1")
        return JsonFormatter().format(record("done %s", status=201))

    line = json.loads(in_a_fresh_context(made))

    assert line["message"] == "done %s" and line["request_id"] == "r-1"
    assert line["status"] == 201 and line["logger"] == "corral.test"
    assert "operation_id" not in line  # unset ids are left out


def test_a_text_line_is_for_people() -> None:
    def made() -> str:
        trace.operation_id.set("op-9")
        return TextFormatter().format(record("hello"))

    text = in_a_fresh_context(made)
    assert "corral.test: hello" in text and text.endswith("[operation_id=op-9]")
    assert not text.startswith("{")


def test_periodic_reports_become_counts() -> None:
    assert periodic_counts(7) == {"items": 7}
    assert periodic_counts({"requeued": ["a", "b"], "lost": []}) == {"requeued": 2, "lost": 0}
    assert periodic_counts({"h1": "ready", "h2": "down", "h3": "ready"}) == {
        "ready": 2,
        "down": 1,
    }
    assert periodic_counts({"hosts": 3, "measured": True}) == {"hosts": 3}
    assert periodic_counts(None) == {} and periodic_counts(True) == {}

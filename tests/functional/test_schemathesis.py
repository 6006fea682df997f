"""schemathesis drives the live app (real Redis and the real table) from its own
OpenAPI document, a few examples per operation with the right key: no answer may be
a server error, and every answer must match the document."""

from __future__ import annotations

import dataclasses
from typing import Any

import hypothesis
import pytest
import schemathesis
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from handlers.app import create_app
from services.deps import Deps
from shared.settings import Settings
from tests.fixtures.corral import Api, make_tenant

EXAMPLES_PER_OPERATION = 6
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Token login on, as make run has it: 004's POST /api/auth/login is then exercised
    (without a secret it answers 503 service_unavailable by design)."""
    # An event follow (`follow=true`) streams until its cap: short here.
    return dataclasses.replace(
        settings, token_secret="schemathesis-token-secret", events_follow_cap_seconds=0.5
    )


@pytest.fixture
def keys(api: Api) -> dict[str, str]:
    tenant = make_tenant(api)  # a host that is never reached: nothing here runs jobs
    assert tenant.api.tenant_key is not None
    return {"/api/public/": tenant.api.tenant_key, "/api/v1/": api.operator_key}


def key_for(path: str, keys: dict[str, str]) -> dict[str, str]:
    for prefix, key in keys.items():
        if path.startswith(prefix):
            return {"Authorization": f"Bearer {key}"}
    return {}


def test_the_live_app_keeps_to_its_document(deps: Deps, keys: dict[str, str]) -> None:
    app = create_app(deps, metrics=True)
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    failures: list[str] = []
    operations = 0
    for found in schema.get_all_operations():
        operation = found.ok()  # type: ignore[union-attr]  # an invalid schema raises here
        operations += 1

        @hypothesis.settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(hypothesis.HealthCheck),
            phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        )
        @hypothesis.given(case=operation.as_strategy())
        def run(case: Any) -> None:
            headers = key_for(case.path, keys)
            response = case.call(headers=headers)
            try:
                case.validate_response(response, checks=CHECKS, headers=headers)
            except Exception as exc:  # a FailureGroup: keep going, report them all
                failures.append(f"{case.method} {case.formatted_path}: {str(exc)[:600]}")

        run()
    assert operations >= 40
    assert not failures, "\n\n".join(failures[:10])

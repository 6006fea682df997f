from __future__ import annotations

from tests.fixtures.corral import Tenant


def test_create_container(tenant: Tenant) -> None:
    resp = tenant.create()
    assert resp.status_code == 202, resp.text
    body = resp.json
    assert body["container"]["status"] == "provisioning"
    assert body["operation"]["status"] == "queued"

def test_create_container(tenant):
    resp = tenant.create()
    assert resp.status_code == 202, resp.text
    body = resp.json
    assert body["container"]["status"] == "provisioning"
    assert body["operation"]["status"] == "queued"

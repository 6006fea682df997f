"""Managed databases (001) on real servers: Debian's PostgreSQL and MariaDB, a real
dockerd for the containers they are bound to."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import docker
import psycopg
import pymysql
import pytest

from devstack.databases import DatabaseServer
from devstack.dockerd import Dockerd
from devstack.processes import free_port
from infra.table import schema
from infra.table.expression import Expression
from services.deps import Deps
from shared.capacity import Resources
from tests.fixtures.corral import Api, error_of, run_jobs
from workers import context
from workers.hosts import check_hosts
from workers.reconcile import reconcile

pytestmark = pytest.mark.integration

RECORD_FIELDS = {
    "id", "cluster_id", "name", "engine", "version", "status", "connection_host",
    "connection_port", "connection_user", "connection_database", "app_id", "created_at",
    "updated_at",
}  # fmt: skip


@pytest.fixture
def world(
    api: Api,
    deps: Deps,
    worker_context: context.WorkerContext,
    dockerd: Dockerd,
    busybox_image: str,
    postgres_server: DatabaseServer,
    mariadb_server: DatabaseServer,
) -> dict[str, Any]:
    egg = api.make_egg()
    api.make_host(dockerd.url)
    cluster = api.make_cluster([egg["id"]], databases=3)
    api.tenant_key = api.make_key(cluster["id"])
    pg = api.admin("POST", "/database-hosts", postgres_server.host_body("pg"))
    my = api.admin("POST", "/database-hosts", mariadb_server.host_body("maria"))
    assert pg.status_code == my.status_code == 201, (pg.text, my.text)
    check_hosts()  # the periodic check reads their versions
    return {"egg": egg, "cluster": cluster, "pg": pg.json, "my": my.json}


def _create(api: Api, cluster_id: str, name: str, **extra: Any) -> Any:
    return api.admin(
        "POST", "/managed-databases", {"cluster_id": cluster_id, "name": name, **extra}
    )


def _ready(api: Api, deps: Deps, cluster_id: str, name: str, **extra: Any) -> dict[str, Any]:
    resp = _create(api, cluster_id, name, **extra)
    assert resp.status_code == 201, resp.text
    assert set(resp.json) == RECORD_FIELDS
    assert resp.json["status"] == "creating"
    run_jobs(deps)
    got = api.admin("GET", f"/managed-databases/{resp.json['id']}").json
    assert got["status"] == "ready", got
    return dict(got)


def _running(api: Api, deps: Deps, egg_id: str) -> str:
    resp = api.tenant("POST", "/containers", {"name": "app", "egg_id": egg_id})
    assert resp.status_code == 202, resp.text
    run_jobs(deps)
    return str(resp.json["container"]["id"])


def _env_inside(docker_client: docker.DockerClient, container_id: str) -> dict[str, str]:
    output = docker_client.containers.get(f"corral-{container_id}").exec_run(["env"]).output
    assert isinstance(output, bytes)
    return dict(line.split("=", 1) for line in output.decode().splitlines() if "=" in line)


def test_database_hosts_show_their_version_and_health_never_their_password(
    api: Api, world: dict[str, Any], postgres_server: DatabaseServer
) -> None:
    listed = api.admin("GET", "/database-hosts").json
    assert {h["engine"] for h in listed} == {"postgres", "mysql"}
    for host in listed:
        assert "password" not in host
        assert postgres_server.password not in str(host)
        assert host["health"] == "ready"
    pg = api.admin("GET", f"/database-hosts/{world['pg']['id']}").json
    assert pg["version"].startswith("15.")


def test_a_postgres_database_is_made_bound_and_reached_with_its_credentials(
    api: Api, deps: Deps, world: dict[str, Any], docker_client: docker.DockerClient
) -> None:
    cluster_id = world["cluster"]["id"]
    db = _ready(api, deps, cluster_id, "my-postgres", engine="postgres", version="15")
    assert db["version"] == "15"
    assert db["connection_port"] == world["pg"]["port"]
    assert api.admin("GET", f"/clusters/{cluster_id}").json["used"]["databases"] == 1
    listed = api.admin("GET", "/managed-databases").json
    assert [d["id"] for d in listed] == [db["id"]]
    assert all(set(d) == RECORD_FIELDS for d in listed)

    app = _running(api, deps, world["egg"]["id"])
    bound = api.admin("POST", f"/managed-databases/{db['id']}/bind", {"app_id": app})
    assert bound.status_code == 202, bound.text
    assert bound.json["database"]["app_id"] == app
    run_jobs(deps)
    assert api.tenant("GET", f"/containers/{app}").json["status"] == "running"
    env = _env_inside(docker_client, app)
    url = env["DATABASE_URL"]
    assert url.startswith("postgresql://")
    assert env["PGUSER"] == db["connection_user"]
    assert env["PGDATABASE"] == db["connection_database"]
    assert env["PGPORT"] == str(db["connection_port"])
    # the test connects with the credentials the container was given
    with psycopg.connect(url, connect_timeout=5) as conn:
        conn.execute("CREATE TABLE notes (body text)")
        conn.execute("INSERT INTO notes VALUES ('kept')")
        assert conn.execute("SELECT current_database()").fetchone() == (db["connection_database"],)
    # the password never shows in the API
    assert env["PGPASSWORD"] not in api.admin("GET", "/managed-databases").text

    unbound = api.admin("DELETE", f"/managed-databases/{db['id']}/bind")
    assert unbound.status_code == 202, unbound.text
    run_jobs(deps)
    assert "DATABASE_URL" not in _env_inside(docker_client, app)
    assert api.admin("GET", f"/managed-databases/{db['id']}").json["app_id"] is None

    assert api.admin("DELETE", f"/managed-databases/{db['id']}").status_code == 204
    assert api.admin("GET", f"/managed-databases/{db['id']}").json["status"] == "deleting"
    run_jobs(deps)
    assert error_of(api.admin("GET", f"/managed-databases/{db['id']}")) == (404, "not_found")
    assert api.admin("GET", f"/clusters/{cluster_id}").json["used"]["databases"] == 0
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=5).close()
    assert api.admin("GET", f"/database-hosts/{world['pg']['id']}").json["database_count"] == 0


def test_a_mysql_database_is_made_and_reached(
    api: Api, deps: Deps, world: dict[str, Any], docker_client: docker.DockerClient
) -> None:
    db = _ready(api, deps, world["cluster"]["id"], "my-maria", engine="mysql")
    assert db["version"] == "10"
    app = _running(api, deps, world["egg"]["id"])
    assert (
        api.admin("POST", f"/managed-databases/{db['id']}/bind", {"app_id": app}).status_code == 202
    )
    run_jobs(deps)
    env = _env_inside(docker_client, app)
    assert env["DATABASE_URL"].startswith("mysql://")
    url = urlsplit(env["DATABASE_URL"])
    conn = pymysql.connect(
        host=env["MYSQL_HOST"], port=int(env["MYSQL_PORT"]), user=env["MYSQL_USER"],
        password=env["MYSQL_PASSWORD"], database=env["MYSQL_DATABASE"], connect_timeout=5,
    )  # fmt: skip
    with conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE notes (body TEXT)")
        cur.execute("SELECT DATABASE()")
        assert cur.fetchone() == (url.path.lstrip("/"),)
    # bound to a live container: delete waits for the unbind
    assert error_of(api.admin("DELETE", f"/managed-databases/{db['id']}")) == (
        409,
        "action_not_allowed",
    )


def test_the_databases_limit_holds_exactly_under_concurrent_creates(
    api: Api, deps: Deps, world: dict[str, Any]
) -> None:
    cluster_id = world["cluster"]["id"]
    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(lambda i: _create(api, cluster_id, f"db-{i}"), range(10)))
    codes = sorted(a.status_code for a in answers)
    assert codes == [201] * 3 + [409] * 7, [a.text for a in answers]
    assert {error_of(a)[1] for a in answers if a.status_code == 409} == {"capacity_exceeded"}
    assert api.admin("GET", f"/clusters/{cluster_id}").json["used"]["databases"] == 3
    assert api.admin("GET", f"/database-hosts/{world['pg']['id']}").json["database_count"] == 3
    run_jobs(deps)
    statuses = {d["status"] for d in api.admin("GET", "/managed-databases").json}
    assert statuses == {"ready"}
    # a database host that holds databases is not deleted
    assert error_of(api.admin("DELETE", f"/database-hosts/{world['pg']['id']}")) == (
        409,
        "host_in_use",
    )


def test_bad_requests_are_clear_and_make_nothing(
    api: Api, deps: Deps, world: dict[str, Any]
) -> None:
    cluster_id = world["cluster"]["id"]
    unknown = _create(api, cluster_id, "old", engine="postgres", version="9")
    assert error_of(unknown) == (400, "invalid_input")
    assert "15." in unknown.json["error"]["message"]
    assert error_of(_create(api, cluster_id, "x", engine="oracle")) == (400, "invalid_input")
    assert error_of(_create(api, "no-such-cluster", "x")) == (404, "not_found")
    first = _ready(api, deps, cluster_id, "twice")
    assert error_of(_create(api, cluster_id, "twice")) == (409, "conflict")
    # a container of another cluster is not found from this database
    other = api.make_cluster([world["egg"]["id"]])
    api.tenant_key = api.make_key(other["id"])
    foreign = _running(api, deps, world["egg"]["id"])
    bind = api.admin("POST", f"/managed-databases/{first['id']}/bind", {"app_id": foreign})
    assert error_of(bind) == (404, "not_found")
    assert api.admin("GET", f"/clusters/{cluster_id}").json["used"]["databases"] == 1


def test_a_database_host_that_is_down_gives_a_clear_error_and_nothing_half_made(
    api: Api, deps: Deps, world: dict[str, Any], postgres_server: DatabaseServer
) -> None:
    # the only postgres host of a fresh cluster, pointing at a port nothing listens on
    cluster = api.make_cluster([world["egg"]["id"]], databases=2)
    dead = postgres_server.host_body("dead", port=free_port(), cluster_ids=[cluster["id"]])
    host = api.admin("POST", "/database-hosts", dead).json
    api.admin(
        "PATCH", f"/database-hosts/{world['pg']['id']}", {"cluster_ids": [world["cluster"]["id"]]}
    )
    made = _create(api, cluster["id"], "lost")
    assert made.status_code == 201, made.text
    run_jobs(deps)
    failed = api.admin("GET", f"/managed-databases/{made.json['id']}").json
    assert failed["status"] == "error"
    assert "database host" in failed["error"]
    assert "127.0.0.1" not in failed["error"]
    # once the check saw it down, creating there is refused before anything is written
    check_hosts()
    assert api.admin("GET", f"/database-hosts/{host['id']}").json["health"] == "down"
    assert error_of(_create(api, cluster["id"], "later")) == (409, "no_host_available")
    assert api.admin("GET", f"/clusters/{cluster['id']}").json["used"]["databases"] == 1


def test_a_tenant_database_is_injected_rotated_and_dropped(
    api: Api,
    deps: Deps,
    world: dict[str, Any],
    docker_client: docker.DockerClient,
    postgres_server: DatabaseServer,
) -> None:
    created = api.tenant(
        "POST", "/containers", {"name": "app", "egg_id": world["egg"]["id"], "databases": 1}
    )
    assert created.status_code == 202, created.text
    app = created.json["container"]["id"]
    run_jobs(deps)
    made = api.tenant("POST", f"/containers/{app}/databases", {"name": "app-db"})
    assert made.status_code == 202, made.text
    database, password = made.json["database"], made.json["database"]["password"]
    assert made.json["operation"]["params"]["database_id"] == database["id"]
    run_jobs(deps)
    listed = api.tenant("GET", f"/containers/{app}/databases").json
    assert [(d["id"], d["status"]) for d in listed] == [(database["id"], "ready")]
    assert "password" not in listed[0] and password not in str(listed)
    env = _env_inside(docker_client, app)
    assert env["PGPASSWORD"] == password
    with psycopg.connect(env["DATABASE_URL"], connect_timeout=5) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    # its allocation is one database
    again = api.tenant("POST", f"/containers/{app}/databases", {"name": "two"})
    assert error_of(again) == (409, "capacity_exceeded")
    shrink = api.tenant("PATCH", f"/containers/{app}", {"resources": {"databases": 0}})
    assert error_of(shrink) == (400, "invalid_input")

    rotated = api.tenant("POST", f"/containers/{app}/databases/{database['id']}/rotate-password")
    assert rotated.status_code == 202, rotated.text
    new_password = rotated.json["database"]["password"]
    assert new_password != password
    run_jobs(deps)
    assert _env_inside(docker_client, app)["PGPASSWORD"] == new_password
    where = {
        "host": database["connection_host"],
        "port": database["connection_port"],
        "user": database["connection_user"],
        "dbname": database["connection_database"],
        "connect_timeout": 5,
    }
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(password=password, **where).close()
    psycopg.connect(password=new_password, **where).close()

    dropped = api.tenant("DELETE", f"/containers/{app}/databases/{database['id']}")
    assert dropped.status_code == 202, dropped.text
    run_jobs(deps)
    assert api.tenant("GET", f"/containers/{app}/databases").json == []
    assert "DATABASE_URL" not in _env_inside(docker_client, app)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(password=new_password, **where).close()
    assert api.admin("GET", f"/database-hosts/{world['pg']['id']}").json["database_count"] == 0
    # another cluster's key does not reach this container's databases
    other = api.make_cluster([world["egg"]["id"]])
    outsider = api.make_key(other["id"])
    peek = api.tenant("GET", f"/containers/{app}/databases", key=outsider)
    assert error_of(peek) == (404, "not_found")


def test_deleting_a_container_drops_its_databases(
    api: Api, deps: Deps, world: dict[str, Any]
) -> None:
    created = api.tenant(
        "POST", "/containers", {"name": "app", "egg_id": world["egg"]["id"], "databases": 2}
    )
    app = created.json["container"]["id"]
    run_jobs(deps)
    made = api.tenant("POST", f"/containers/{app}/databases", {"name": "gone-soon"}).json
    run_jobs(deps)
    assert api.tenant("DELETE", f"/containers/{app}").status_code == 202
    run_jobs(deps)
    assert api.admin("GET", f"/database-hosts/{world['pg']['id']}").json["database_count"] == 0
    where = {
        "host": made["database"]["connection_host"],
        "port": made["database"]["connection_port"],
        "user": made["database"]["connection_user"],
        "dbname": made["database"]["connection_database"],
        "password": made["database"]["password"],
        "connect_timeout": 5,
    }
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(**where).close()
    assert api.tenant("GET", "/capacity").json["used"]["databases"] == 0


def _on_server(server: DatabaseServer, database: str) -> bool:
    """Whether PostgreSQL `server` holds `database` (asked with its admin login)."""
    with psycopg.connect(
        host=server.host,
        port=server.port,
        user=server.username,
        password=server.password,
        dbname="postgres",
        connect_timeout=5,
    ) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
        return found.fetchone() is not None


def test_a_database_whose_job_was_lost_is_converged_by_the_reconciler(
    api: Api,
    deps: Deps,
    world: dict[str, Any],
    worker_context: context.WorkerContext,
    postgres_server: DatabaseServer,
) -> None:
    cluster_id = world["cluster"]["id"]
    made = _create(api, cluster_id, "stuck", engine="postgres").json
    deps.jobs.queue.empty()  # its job is lost: Redis flushed, or never reached
    assert made["id"] not in str(reconcile()["requeued"])  # too young: it may be on its way
    worker_context.clock = lambda: datetime.now(UTC) + timedelta(minutes=2)
    assert reconcile()["requeued"] == [f"db-create-{made['id']}"]
    assert reconcile()["requeued"] == []  # its job waits now: not enqueued twice
    run_jobs(deps)
    got = api.admin("GET", f"/managed-databases/{made['id']}").json
    assert got["status"] == "ready", got
    assert _on_server(postgres_server, got["connection_database"])
    assert api.admin("GET", f"/clusters/{cluster_id}").json["used"]["databases"] == 1
    assert api.admin("GET", f"/database-hosts/{world['pg']['id']}").json["database_count"] == 1
    assert reconcile()["requeued"] == []  # nothing left in flight

    assert api.admin("DELETE", f"/managed-databases/{made['id']}").status_code == 204
    deps.jobs.queue.empty()
    worker_context.clock = lambda: datetime.now(UTC) + timedelta(minutes=2)
    assert reconcile()["requeued"] == [f"db-delete-{made['id']}"]
    run_jobs(deps)
    assert error_of(api.admin("GET", f"/managed-databases/{made['id']}")) == (404, "not_found")
    assert not _on_server(postgres_server, got["connection_database"])
    assert api.admin("GET", f"/clusters/{cluster_id}").json["used"]["databases"] == 0
    assert api.admin("GET", f"/database-hosts/{world['pg']['id']}").json["database_count"] == 0


def _forget(deps: Deps, cluster_id: str, host_id: str, container_id: str) -> None:
    """The table loses a container's record and what it counted (as an in-memory table
    does across a restart); its databases' records stay."""
    deps.repo.db.client.delete_item(
        TableName=deps.settings.table_name,
        Key={
            "pk": {"S": schema.cluster_pk(cluster_id)},
            "sk": {"S": schema.workload_sk(container_id)},
        },
    )
    used = [f"used_{name}" for name in Resources.__dataclass_fields__]
    for pk, count in ((schema.cluster_pk(cluster_id), "container_count"),
                      (schema.host_pk(host_id), "workload_count")):  # fmt: skip
        deps.repo.db.update(pk, schema.META, Expression().set_all(dict.fromkeys([*used, count], 0)))


def test_an_adopted_container_comes_back_with_its_variables_and_databases(
    api: Api,
    deps: Deps,
    world: dict[str, Any],
    worker_context: context.WorkerContext,
    docker_client: docker.DockerClient,
) -> None:
    egg = api.make_egg(name="vars", variables=[{"name": "Level", "env": "LEVEL", "default": "low"}])
    cluster_id = world["cluster"]["id"]
    allowed = {"egg_ids": [world["egg"]["id"], egg["id"]]}
    assert api.admin("PATCH", f"/clusters/{cluster_id}", allowed).status_code == 200
    body = {"name": "adoptee", "egg_id": egg["id"], "environment": {"LEVEL": "high"}}
    created = api.tenant("POST", "/containers", body | {"databases": 1, "restart_policy": "always"})
    assert created.status_code == 202, created.text
    app = created.json["container"]["id"]
    run_jobs(deps)
    made = api.tenant("POST", f"/containers/{app}/databases", {"name": "app-db"})
    assert made.status_code == 202, made.text
    run_jobs(deps)
    before = _env_inside(docker_client, app)
    assert before["LEVEL"] == "high" and before["PGPASSWORD"] == made.json["database"]["password"]

    host_id = deps.repo.workloads.get(cluster_id, app).host_id
    _forget(deps, cluster_id, host_id, app)
    assert reconcile()["adopted"] == [app]
    adopted = api.tenant("GET", f"/containers/{app}").json
    assert adopted["environment"] == {"LEVEL": "high"}
    assert api.tenant("GET", "/capacity").json["used"]["databases"] == 1

    # the reconciler recreates it (lost, restart policy always): as it was made
    docker_client.containers.get(f"corral-{app}").remove(force=True)
    assert reconcile()["lost"] == [app]
    run_jobs(deps)
    after = _env_inside(docker_client, app)
    assert after["LEVEL"] == "high"
    assert after["DATABASE_URL"] == before["DATABASE_URL"]
    with psycopg.connect(after["DATABASE_URL"], connect_timeout=5) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    # it holds its database again: deleting it gives the container's slot back, exactly
    database_id = made.json["database"]["id"]
    dropped = api.tenant("DELETE", f"/containers/{app}/databases/{database_id}")
    assert dropped.status_code == 202, dropped.text
    run_jobs(deps)
    assert api.tenant("GET", f"/operations/{dropped.json['operation']['id']}").json["status"] == (
        "succeeded"
    )
    assert "DATABASE_URL" not in _env_inside(docker_client, app)
    assert api.admin("GET", f"/database-hosts/{world['pg']['id']}").json["database_count"] == 0

"""`corral`: Corral's tenant API (`corral containers ...`) and operator API
(`corral admin ...`) from a terminal.

Every command is one call through `show` (read, print) or `change` (a tenant change
answered 202: print it, or with `--wait` follow its operation to the end, then print
the result). Exit codes: 0 success, 1 client error (the API answered 4xx, or bad
usage), 2 server error or Corral unreachable, 3 the operation ran and failed."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from typing import Annotated, Any

import typer
from rich.markup import escape

from cli import config
from cli.client import OPERATION_FAILED, SERVER_ERROR, Client, CliError
from cli.output import (
    CONTAINER_COLUMNS,
    EGG_COLUMNS,
    OPERATION_COLUMNS,
    Columns,
    emit,
    err,
    out,
)

app = typer.Typer(
    name="corral",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Drive Corral: containers with a cluster's API key, the fleet with the operator "
    "key (`corral admin`). Reads CORRAL_URL, CORRAL_KEY, CORRAL_OPERATOR_KEY, or the "
    ".corral/local.json that `make run` writes.",
)


def group(parent: typer.Typer, name: str, summary: str) -> typer.Typer:
    """A command group `name` under `parent`."""
    commands = typer.Typer(no_args_is_help=True, help=summary)
    parent.add_typer(commands, name=name)
    return commands


containers = group(app, "containers", "A cluster's containers.")
operations = group(app, "operations", "Operations: the record of each change.")
webhooks = group(app, "webhooks", "Endpoints the cluster's events are POSTed to.")
own_keys = group(app, "keys", "The cluster's API keys: the one in use, and new narrower ones.")
admin = group(app, "admin", "The operator API (the operator key).")

FINISHED = {"succeeded", "failed"}
# One long-poll lasts at most this (the server caps it too), then the CLI asks again.
WAIT_STEP_SECONDS = 25.0

Json = Annotated[bool, typer.Option("--json", help="Print the API's JSON.")]
Wait = Annotated[bool, typer.Option("--wait", help="Follow the operation until it ends.")]
WaitTimeout = Annotated[
    float, typer.Option("--timeout", min=1, help="Seconds --wait waits at most.")
]
Cpu = Annotated[float | None, typer.Option("--cpu", help="CPU cores.")]
Ram = Annotated[int | None, typer.Option("--ram", help="Memory, MB.")]
Storage = Annotated[int | None, typer.Option("--storage", help="Disk, MB.")]
Io = Annotated[int | None, typer.Option("--io", help="Block IO weight (10-1000).")]
Ports = Annotated[int | None, typer.Option("--ports", help="Host ports to allocate.")]
ItemId = Annotated[str, typer.Argument(metavar="ID")]
FollowLogs = Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines.")]
IdemKey = Annotated[
    str | None,
    typer.Option(
        "--idempotency-key",
        help="Makes the change safe to retry: the same key again answers the first answer "
        "and changes nothing more (kept 24 h).",
    ),
]
Limit = Annotated[int, typer.Option("--limit", min=1, max=100, help="How many, newest first.")]


@contextlib.contextmanager
def session(operator: bool = False) -> Iterator[Client]:
    """A client of the tenant (or operator) API. An error ends the command with the
    envelope's message on stderr and its exit code, never a traceback."""
    try:
        client = Client(config.load(), operator)
        try:
            yield client
        finally:
            client.close()
    except CliError as exc:
        code = f" [{exc.code}]" if exc.code else ""
        err.print(f"[red]error{escape(code)}:[/red] {escape(exc.message)}")
        raise typer.Exit(exc.exit_code) from None


def show(
    path: str,
    as_json: bool,
    columns: Columns | None = None,
    *,
    method: str = "GET",
    body: Any = None,
    params: dict[str, Any] | None = None,
    operator: bool = False,
    idempotency_key: str | None = None,
) -> None:
    """Call, print the answer."""
    with session(operator) as client:
        answer = client.call(method, path, body, params, idempotency_key=idempotency_key)
        emit(answer, as_json, columns)


def change(
    method: str,
    path: str,
    body: Any,
    wait: bool,
    as_json: bool,
    timeout: float = 600.0,
    idempotency_key: str | None = None,
) -> None:
    """A tenant change: its answer (the container and its operation), or with `wait`
    the container once its operation has ended."""
    with session() as client:
        accepted = client.call(method, path, body, idempotency_key=idempotency_key)
        if not wait:
            emit(accepted, as_json)
            return
        operation = follow(client, accepted["operation"], timeout)
        result: dict[str, Any] = {"operation": operation}
        if operation["kind"] != "delete":
            result["container"] = client.call("GET", f"/containers/{operation['container_id']}")
        emit(result if as_json else result.get("container", operation), as_json)
        raise_if_failed(operation)


def follow(client: Client, operation: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Long-poll the operation until it ends, a spinner on stderr saying where it is."""
    started = time.monotonic()
    deadline = started + timeout
    path = f"/operations/{operation['id']}/wait"
    with err.status(_progress(operation, 0.0)) as status:
        while operation["status"] not in FINISHED:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CliError(
                    f"Operation {operation['id']} is still {operation['status']} after "
                    f"{timeout:g} s (`corral operations wait {operation['id']}` goes on).",
                    SERVER_ERROR,
                )
            step = min(WAIT_STEP_SECONDS, left)
            operation = client.call("GET", path, params={"timeout": step}, timeout=step + 15)
            status.update(_progress(operation, time.monotonic() - started))
    err.print(_progress(operation, time.monotonic() - started))
    return operation


def raise_if_failed(operation: dict[str, Any]) -> None:
    """A failed operation ends the command with exit code 3 and the reason."""
    if operation["status"] == "failed":
        raise CliError(
            f"{operation['kind']} failed: {operation.get('error') or 'no reason given'}",
            OPERATION_FAILED,
            operation.get("error_code"),
        )


def _progress(operation: dict[str, Any], seconds: float) -> str:
    return f"{operation['kind']} {operation['id']}: {operation['status']} ({seconds:.1f} s)"


def _given(**fields: Any) -> dict[str, Any]:
    return {name: value for name, value in fields.items() if value is not None}


# -- the tenant API --------------------------------------------------------------------


@app.command()
def cluster(as_json: Json = False) -> None:
    """The cluster of the API key: plan, used and remaining."""
    show("/cluster", as_json)


@app.command()
def capacity(as_json: Json = False) -> None:
    """The cluster's totals and what is used."""
    show("/capacity", as_json)


@app.command()
def eggs(as_json: Json = False) -> None:
    """The eggs (server types) this cluster may create containers from."""
    show("/eggs", as_json, EGG_COLUMNS)


@containers.command("list")
def containers_list(as_json: Json = False) -> None:
    """The cluster's containers."""
    show("/containers", as_json, CONTAINER_COLUMNS)


@containers.command("show")
def containers_show(container_id: str, as_json: Json = False) -> None:
    """One container."""
    show(f"/containers/{container_id}", as_json)


@containers.command("create")
def containers_create(
    name: str,
    egg: Annotated[
        str | None, typer.Option("--egg", help="Egg id (default: CORRAL_EGG or local.json's).")
    ] = None,
    cpu: Cpu = None,
    ram: Ram = None,
    storage: Storage = None,
    io: Io = None,
    ports: Ports = None,
    lifetime: Annotated[int | None, typer.Option(help="Seconds until it expires.")] = None,
    restart_policy: Annotated[
        str | None, typer.Option("--restart-policy", help="never, on-failure or always.")
    ] = None,
    wait: Wait = False,
    timeout: WaitTimeout = 600.0,
    as_json: Json = False,
    idempotency_key: IdemKey = None,
) -> None:
    """Create a container (with --wait: until it runs). It is sent with an Idempotency-Key
    (a new one unless given), so a lost answer is retried without a second container."""
    egg_id = egg or config.load().egg_id
    if egg_id is None:
        err.print("error: name an egg with --egg (`corral eggs` lists them)")
        raise typer.Exit(1)
    body = {"name": name, "egg_id": egg_id} | _given(
        cpu_cores=cpu, ram_mb=ram, storage_mb=storage, io=io, ports=ports,
        lifetime=lifetime, restart_policy=restart_policy,
    )  # fmt: skip
    key = idempotency_key or str(uuid.uuid4())
    change("POST", "/containers", body, wait, as_json, timeout, key)


@containers.command("resize")
def containers_resize(
    container_id: str,
    cpu: Cpu = None,
    ram: Ram = None,
    storage: Storage = None,
    io: Io = None,
    ports: Ports = None,
    wait: Wait = False,
    timeout: WaitTimeout = 600.0,
    as_json: Json = False,
    idempotency_key: IdemKey = None,
) -> None:
    """Change a container's resources (what is not given stays)."""
    resources = _given(cpu_cores=cpu, ram_mb=ram, storage_mb=storage, io=io, ports=ports)
    body = {"resources": resources}
    change("PATCH", f"/containers/{container_id}", body, wait, as_json, timeout, idempotency_key)


@containers.command("rename")
def containers_rename(
    container_id: str,
    name: str,
    wait: Wait = False,
    timeout: WaitTimeout = 600.0,
    as_json: Json = False,
    idempotency_key: IdemKey = None,
) -> None:
    """Rename a container."""
    body = {"name": name}
    change("PATCH", f"/containers/{container_id}", body, wait, as_json, timeout, idempotency_key)


@containers.command("power")
def containers_power(
    container_id: str,
    signal: Annotated[str, typer.Argument(help="start, stop, restart, kill, pause or resume.")],
    wait: Wait = False,
    timeout: WaitTimeout = 600.0,
    as_json: Json = False,
    idempotency_key: IdemKey = None,
) -> None:
    """Start, stop, restart, kill, pause or resume a container."""
    path = f"/containers/{container_id}/power"
    change("POST", path, {"signal": signal}, wait, as_json, timeout, idempotency_key)


@containers.command("delete")
def containers_delete(
    container_id: str,
    wait: Wait = False,
    timeout: WaitTimeout = 600.0,
    as_json: Json = False,
    idempotency_key: IdemKey = None,
) -> None:
    """Delete a container and its data."""
    change("DELETE", f"/containers/{container_id}", None, wait, as_json, timeout, idempotency_key)


@containers.command("health")
def containers_health(container_id: str, as_json: Json = False) -> None:
    """CPU, memory, disk, heartbeat and uptime, as last measured."""
    show(f"/containers/{container_id}/health", as_json)


@containers.command("lease")
def containers_lease(
    container_id: str,
    lifetime: Annotated[int | None, typer.Option(help="Seconds from now.")] = None,
    expires_at: Annotated[str | None, typer.Option(help="An ISO 8601 time.")] = None,
    as_json: Json = False,
    idempotency_key: IdemKey = None,
) -> None:
    """Renew (or shorten) a container's lease."""
    body = _given(lifetime=lifetime, expires_at=expires_at)
    path = f"/containers/{container_id}/lease"
    show(path, as_json, method="POST", body=body, idempotency_key=idempotency_key)


@containers.command("logs")
def containers_logs(
    container_id: str,
    tail: Annotated[int, typer.Option(min=1, max=10000, help="Last lines to show.")] = 100,
    follow_: FollowLogs = False,
    as_json: Json = False,
) -> None:
    """A container's output (stdout and stderr)."""
    path = f"/containers/{container_id}/logs"
    with session() as client:
        if not follow_:
            answer = client.call("GET", path, params={"tail": tail})
            if as_json:
                emit(answer, True)
            for line in [] if as_json else answer["lines"]:
                _log_line(line, False)
            return
        for event in client.events(path, {"tail": tail, "follow": 1}):
            if event.kind == "error":
                raise CliError(event.data["error"]["message"], SERVER_ERROR)
            if event.kind == "end":
                break
            _log_line(event.data, as_json)


def _log_line(line: dict[str, Any], as_json: bool) -> None:
    if as_json:  # one JSON object a line: easy to pipe
        out.print(json.dumps(line), markup=False)
    else:
        out.print(f"{line['time'] or '-'} {line['stream']:6} {line['line']}", markup=False)


@operations.command("list")
def operations_list(limit: Limit = 20, as_json: Json = False) -> None:
    """The cluster's recent operations, newest first."""
    show("/operations", as_json, OPERATION_COLUMNS, params={"limit": limit})


@operations.command("show")
def operations_show(operation_id: str, as_json: Json = False) -> None:
    """One operation."""
    show(f"/operations/{operation_id}", as_json)


@operations.command("wait")
def operations_wait(operation_id: str, timeout: WaitTimeout = 600.0, as_json: Json = False) -> None:
    """Wait for an operation to end; exit 3 when it failed."""
    with session() as client:
        operation = follow(client, client.call("GET", f"/operations/{operation_id}"), timeout)
        emit(operation, as_json)
        raise_if_failed(operation)


# -- the event log and webhooks (tenant and operator alike) -----------------------------

EVENT_COLUMNS: Columns = (
    ("ID", "id"),
    ("TIME", "time"),
    ("TYPE", "type"),
    ("RESOURCE", "resource.id"),
    ("ACTOR", "actor"),
)
WEBHOOK_COLUMNS: Columns = (
    ("ID", "id"),
    ("URL", "url"),
    ("TYPES", "types"),
    ("STATUS", "status"),
    ("WHY", "disabled_reason"),
)
DELIVERY_COLUMNS: Columns = (
    ("AT", "at"),
    ("EVENT", "event_id"),
    ("TYPE", "event_type"),
    ("STATUS", "status_code"),
    ("DELIVERED", "delivered"),
    ("ERROR", "error"),
)
Types = Annotated[
    str | None,
    typer.Option("--types", help="Event types, comma-separated (workload, key.created)."),
]
FollowEvents = Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new events.")]
After = Annotated[str | None, typer.Option("--after", help="Start after this event id (cursor).")]


def print_events(
    params: dict[str, Any], follow_: bool, as_json: bool, after: str | None, operator: bool
) -> None:
    """A page of the log, or (--follow) the log as it grows: reconnects after the
    server ends a follow at its cap, resuming after the last event printed."""
    params = {k: v for k, v in params.items() if v is not None}
    with session(operator) as client:
        if not follow_:
            page = client.call(
                "GET", "/events", params={**params, "after": after} if after else params
            )
            emit(page if as_json else page["events"], as_json, None if as_json else EVENT_COLUMNS)
            return
        while True:
            for event in client.events("/events", {**params, "follow": 1}, after):
                if event.kind == "end":
                    if event.data.get("reason") != "cap":
                        raise CliError(
                            f"The follow ended: {event.data.get('reason')}.", SERVER_ERROR
                        )
                    break
                after = event.id or after
                if as_json:
                    out.print(json.dumps(event.data), markup=False)
                else:
                    e = event.data
                    out.print(
                        f"{e['time']} {e['type']:24} {e['resource']['id']} by {e['actor']}",
                        markup=False,
                    )


@app.command("events")
def events_command(
    follow_: FollowEvents = False,
    types: Types = None,
    after: After = None,
    limit: Limit = 50,
    as_json: Json = False,
) -> None:
    """The cluster's event log (every change, in order), oldest first."""
    print_events({"types": types, "limit": limit}, follow_, as_json, after, operator=False)


def add_webhook_commands(group: typer.Typer, operator: bool) -> None:
    """`list`, `create URL`, `show ID`, `delete ID`, `deliveries ID`."""

    @group.command("list", help="The endpoints.")
    def list_all(as_json: Json = False) -> None:
        show("/webhooks", as_json, WEBHOOK_COLUMNS, operator=operator)

    @group.command("create", help="A new endpoint; its signing secret is shown this once.")
    def create(
        url: str, types: Types = None, as_json: Json = False, idempotency_key: IdemKey = None
    ) -> None:
        wanted = [t.strip() for t in (types or "").split(",") if t.strip()]
        body = {"url": url, "types": wanted}
        show(
            "/webhooks",
            as_json,
            method="POST",
            body=body,
            operator=operator,
            idempotency_key=idempotency_key,
        )

    @group.command("show", help="One endpoint (disabled: says why).")
    def show_one(item_id: ItemId, as_json: Json = False) -> None:
        show(f"/webhooks/{item_id}", as_json, operator=operator)

    @group.command("delete", help="Stop delivering to an endpoint.")
    def delete(item_id: ItemId) -> None:
        with session(operator) as client:
            client.call("DELETE", f"/webhooks/{item_id}")
        err.print(f"deleted webhook {item_id}")

    @group.command("deliveries", help="An endpoint's delivery attempts, newest first.")
    def deliveries(item_id: ItemId, limit: Limit = 20, as_json: Json = False) -> None:
        show(
            f"/webhooks/{item_id}/deliveries",
            as_json,
            DELIVERY_COLUMNS,
            params={"limit": limit},
            operator=operator,
        )


add_webhook_commands(webhooks, operator=False)


Verbs = Annotated[
    list[str] | None,
    typer.Option("--verb", help="Allow only this verb (read, write, power, delete); repeat."),
]
Containers = Annotated[
    list[str] | None, typer.Option("--container", help="Allow only this container id; repeat.")
]
Eggs = Annotated[list[str] | None, typer.Option("--egg", help="Allow only this egg id; repeat.")]
ExpiresAt = Annotated[
    str | None, typer.Option("--expires-at", help="When the key stops working (ISO 8601).")
]


def key_body(
    name: str,
    verbs: list[str] | None,
    containers: list[str] | None,
    eggs: list[str] | None,
    expires_at: str | None,
) -> dict[str, Any]:
    """A key's creation: what is not given is as wide as the key that creates it."""
    return {"name": name} | _given(
        verbs=verbs or None, container_ids=containers or None, egg_ids=eggs or None,
        expires_at=expires_at,
    )  # fmt: skip


@own_keys.command("current")
def keys_current(as_json: Json = False) -> None:
    """The key in use: its name, scope and expiry."""
    show("/keys/current", as_json)


@own_keys.command("create")
def own_keys_create(
    name: Annotated[str, typer.Option()] = "cli",
    verb: Verbs = None,
    container: Containers = None,
    egg: Eggs = None,
    expires_at: ExpiresAt = None,
    as_json: Json = False,
    idempotency_key: IdemKey = None,
) -> None:
    """A new key of this cluster, no broader than the key in use (narrow it with --verb,
    --container, --egg, --expires-at); its secret is shown this once."""
    body = key_body(name, verb, container, egg, expires_at)
    show("/keys", as_json, method="POST", body=body, idempotency_key=idempotency_key)


# -- the operator API ------------------------------------------------------------------

clusters = group(admin, "clusters", "Clusters: plans, used and limits.")
keys = group(admin, "keys", "A cluster's API keys.")
admin_eggs = group(admin, "eggs", "Eggs (server types).")
hosts = group(admin, "hosts", "Hosts (nodes): capacity, load, drain.")
envs = group(admin, "envs", "Environments of VMs.")
admin_webhooks = group(admin, "webhooks", "Endpoints every log's events are POSTed to.")
add_webhook_commands(admin_webhooks, operator=True)


@admin.command("events")
def admin_events(
    follow_: FollowEvents = False,
    types: Types = None,
    cluster: Annotated[str | None, typer.Option(help="Only this cluster's log.")] = None,
    actor: Annotated[str | None, typer.Option(help="Only changes by this key id.")] = None,
    resource: Annotated[str | None, typer.Option(help="Only changes of this id.")] = None,
    after: After = None,
    limit: Limit = 50,
    as_json: Json = False,
) -> None:
    """Every log (the audit trail), oldest first; filter by cluster, actor, resource."""
    params = {"types": types, "cluster": cluster, "actor": actor, "resource": resource}
    print_events({**params, "limit": limit}, follow_, as_json, after, operator=True)


CLUSTER_COLUMNS: Columns = (
    ("ID", "id"),
    ("NAME", "name"),
    ("STATUS", "status"),
    ("CPU", "used.cpu_cores"),
    ("/", "totals.cpu_cores"),
    ("RAM MB", "used.ram_mb"),
    ("/ ", "totals.ram_mb"),
    ("CONTAINERS", "used.containers"),
    ("/  ", "totals.containers"),
)
ENV_COLUMNS: Columns = (
    ("ID", "id"),
    ("OWNER", "owner"),
    ("STATUS", "status"),
    ("EXPIRES", "expires_at"),
)
HOST_COLUMNS: Columns = (
    ("ID", "id"),
    ("NAME", "name"),
    ("STATUS", "status"),
    ("DRAINING", "draining"),
    ("CPU USED", "used.cpu_cores"),
    ("/", "capacity.cpu_cores"),
    ("RAM USED", "used.ram_mb"),
    ("/ ", "capacity.ram_mb"),
    ("LOAD CPU%", "load.cpu_percent"),
    ("WORKLOADS", "workload_count"),
)


def admin_show(path: str, as_json: bool, columns: Columns | None = None, **kw: Any) -> None:
    show(path, as_json, columns, operator=True, **kw)


def add_list_and_show(
    group: typer.Typer, path: str, noun: str, listing: str, columns: Columns
) -> None:
    """`list` (a table of `columns`) and `show ID` (one record) of an operator noun."""

    @group.command("list", help=listing)
    def list_all(as_json: Json = False) -> None:
        admin_show(path, as_json, columns)

    @group.command("show", help=f"One {noun}.")
    def show_one(item_id: ItemId, as_json: Json = False) -> None:
        admin_show(f"{path}/{item_id}", as_json)


add_list_and_show(
    clusters, "/clusters", "cluster", "Every cluster, with used and limits.", CLUSTER_COLUMNS
)
add_list_and_show(admin_eggs, "/eggs", "egg", "Every egg.", EGG_COLUMNS)
add_list_and_show(hosts, "/hosts", "host", "Every host with capacity, used and load.", HOST_COLUMNS)
add_list_and_show(envs, "/envs", "env", "Every environment of VMs.", ENV_COLUMNS)


@keys.command("list")
def keys_list(cluster_id: str, as_json: Json = False) -> None:
    """A cluster's keys (masked)."""
    columns = (("ID", "id"), ("NAME", "name"), ("KEY", "masked"), ("LAST USED", "last_used_at"))
    admin_show(f"/clusters/{cluster_id}/keys", as_json, columns)


@keys.command("create")
def keys_create(
    cluster_id: str,
    name: Annotated[str, typer.Option()] = "cli",
    verb: Verbs = None,
    container: Containers = None,
    egg: Eggs = None,
    expires_at: ExpiresAt = None,
    as_json: Json = False,
    idempotency_key: IdemKey = None,
) -> None:
    """A new key of the cluster, optionally narrowed (--verb, --container, --egg,
    --expires-at); its secret is shown this once."""
    body = key_body(name, verb, container, egg, expires_at)
    path = f"/clusters/{cluster_id}/keys"
    admin_show(path, as_json, method="POST", body=body, idempotency_key=idempotency_key)


@keys.command("revoke")
def keys_revoke(cluster_id: str, key_id: str) -> None:
    """Revoke a key at once."""
    with session(operator=True) as client:
        client.call("DELETE", f"/clusters/{cluster_id}/keys/{key_id}")
    err.print(f"revoked key {key_id}")


@hosts.command("drain")
def hosts_drain(host_id: str, as_json: Json = False) -> None:
    """No new placements on this host; what runs there stays."""
    admin_show(f"/hosts/{host_id}/drain", as_json, method="POST")


@hosts.command("undrain")
def hosts_undrain(host_id: str, as_json: Json = False) -> None:
    """Place on this host again."""
    admin_show(f"/hosts/{host_id}/undrain", as_json, method="POST")


@admin.command("status")
def admin_status(as_json: Json = False) -> None:
    """The fleet: capacity, used and workloads per host and in total."""
    if as_json:
        admin_show("/status", True)
        return
    with session(operator=True) as client:
        status = client.call("GET", "/status")
    emit(status["hosts"], False, HOST_COLUMNS)
    emit(status["totals"], False)


@admin.command("operations")
def admin_operations(limit: Limit = 20, as_json: Json = False) -> None:
    """Recent operations across the fleet, newest first."""
    columns = (("CLUSTER", "cluster_id"), *OPERATION_COLUMNS)
    admin_show("/operations", as_json, columns, params={"limit": limit})

"""The API throughput floor: a bare Falcon app that makes only the calls an endpoint
cannot do without, against the same table server and Redis, through the same boto3
client setup (`infra.table.dynamo.make_client`), served by the same gunicorn settings.

- `GET /containers/:id`: one GetItem (strongly consistent, as Corral reads) of the
  workload, answered as JSON.
- `POST /containers`: the body parsed, then one TransactWriteItems that writes the
  workload and its operation and moves the cluster's and the host's counters under
  their conditions, then one RQ enqueue of the operation's job: Corral's own request,
  built by Corral's stores for a real container (bench/api_throughput.py writes it to
  the file `FLOOR_SPEC` names), with fresh ids in each request.

No authentication, no validation, no models: what is left of Corral's time above
this floor is what Corral adds.

    FLOOR_SPEC=spec.json CORRAL_TABLE=... \\
        gunicorn --config gunicorn.conf.py 'bench.floor_app:create_app()'
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

import falcon
from a2wsgi import WSGIMiddleware
from rq import Queue, Retry
from rq.serializers import JSONSerializer

from bench.bare_app import Health
from infra.queue import make_redis
from infra.table.dynamo import make_client
from shared.settings import Settings

BASE = "/api/public/clusters/v1"


def _plain(wire: dict[str, Any]) -> dict[str, Any]:
    """A wire item's top-level values, as they are (the cheapest answer there is)."""
    return {name: next(iter(value.values())) for name, value in wire.items()}


class Containers:
    def __init__(self, client: Any, queue: Queue, spec: dict[str, Any]) -> None:
        self.client = client
        self.queue = queue
        self.request = json.dumps(spec["transact"])
        self.workload_id, self.operation_id = spec["workload_id"], spec["operation_id"]
        self.cluster_id, self.job = spec["cluster_id"], spec["job"]

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.get_media()
        workload_id, operation_id = secrets.token_hex(8), f"op-{secrets.token_hex(8)}"
        request = self.request.replace(self.workload_id, workload_id).replace(
            self.operation_id, operation_id
        )
        self.client.transact_write_items(TransactItems=json.loads(request))
        self.queue.enqueue(
            self.job["function"],
            self.cluster_id,
            operation_id,
            job_id=operation_id,
            unique=True,
            retry=Retry(max=len(self.job["retry"]), interval=self.job["retry"]),
            job_timeout=self.job["timeout"],
            result_ttl=3600,
            failure_ttl=self.job["failure_ttl"],
        )
        resp.status = falcon.HTTP_202
        resp.media = {
            "container": {"id": workload_id, "status": "provisioning"},
            "operation": {"id": operation_id, "status": "queued"},
        }


class Container:
    def __init__(self, client: Any, table: str, key: dict[str, str]) -> None:
        self.client = client
        self.table = table
        self.cluster_pk, self.sk_prefix = key["pk"], key["sk_prefix"]

    def on_get(self, req: falcon.Request, resp: falcon.Response, container_id: str) -> None:
        answer = self.client.get_item(
            TableName=self.table,
            Key={"pk": {"S": self.cluster_pk}, "sk": {"S": self.sk_prefix + container_id}},
            ConsistentRead=True,
        )
        if "Item" not in answer:
            raise falcon.HTTPNotFound()
        resp.media = _plain(answer["Item"])


def create_app() -> WSGIMiddleware:
    """Served as bench/bare_app.py and Corral serve requests that do not wait: on a
    pool of `web_threads` threads behind gunicorn's asgi worker."""
    settings = Settings.from_env()
    spec = json.loads(Path(os.environ["FLOOR_SPEC"]).read_text())
    client = make_client(settings)
    queue = Queue(spec["job"]["queue"], connection=make_redis(settings), serializer=JSONSerializer)
    app = falcon.App()
    app.add_route("/health", Health())  # what the bench waits on before it starts
    app.add_route(f"{BASE}/containers", Containers(client, queue, spec))
    app.add_route(
        f"{BASE}/containers/{{container_id}}",
        Container(client, settings.table_name, spec["workload_key"]),
    )
    return WSGIMiddleware(app, workers=settings.web_threads)  # type: ignore[arg-type]

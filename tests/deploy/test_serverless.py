"""serverless.yml: packages offline with osls, the CloudFormation template passes
cfn-lint, the table is infra/table/schema.table_definition(), and the artifact runs on
its own (no import from outside the zip but the Lambda runtime's boto3).

osls (npm, `scripts/package-serverless.sh --install-tools`) and cfn-lint (pip,
dev extra) are required: a missing tool fails these tests, never skips them."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.table import schema
from infra.table.schema import table_definition
from services.deps import Deps
from tests.deploy.conftest import corral_env
from tests.deploy.events import Request, http_api_v2, scheduled_event

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "package-serverless.sh"
OSLS = ROOT / "node_modules" / ".bin" / "osls"
STAGE, REGION = "ci", "eu-west-1"
TABLE_ID = "CorralTable"
# Keys of a table's shape; serverless.yml must agree with table_definition() on
# each, including leaving out what the other leaves out.
SHAPE_KEYS = {
    "AttributeDefinitions",
    "KeySchema",
    "GlobalSecondaryIndexes",
    "LocalSecondaryIndexes",
    "BillingMode",
    "ProvisionedThroughput",
    "StreamSpecification",
}
# boto3 client method or transaction entry -> the IAM action that authorises it
# (TransactWriteItems and TransactGetItems are authorised per entry inside them).
IAM_ACTION = {
    "get_item": "dynamodb:GetItem",
    "put_item": "dynamodb:PutItem",
    "update_item": "dynamodb:UpdateItem",
    "delete_item": "dynamodb:DeleteItem",
    "query": "dynamodb:Query",
    "scan": "dynamodb:Scan",
    "batch_get_item": "dynamodb:BatchGetItem",
    "batch_write_item": "dynamodb:BatchWriteItem",
    "transact_write_items": None,
    "transact_get_items": None,
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
    "Get": "dynamodb:GetItem",
}
# Modules the Lambda runtime provides next to our zip (boto3 and what it needs).
RUNTIME_MODULES = ["boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six.py", "urllib3"]


def canonical(value: Any) -> Any:
    """Order-insensitive lists (attribute definitions, indexes), for comparing shapes."""
    if isinstance(value, dict):
        return {k: canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        items = [canonical(v) for v in value]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    return value


def assert_same_table_shape(properties: dict[str, Any]) -> None:
    expected = table_definition("any")
    keys = (SHAPE_KEYS | set(expected)) - {"TableName"}
    mine = {k: canonical(properties.get(k)) for k in keys}
    theirs = {k: canonical(expected.get(k)) for k in keys}
    assert mine == theirs, (
        "serverless.yml's CorralTable and infra/table/schema.table_definition() differ; "
        "change both together"
    )
    # Time to live is not part of CreateTable; the schema names its attribute.
    ttl_attribute = getattr(schema, "TTL_ATTRIBUTE", None)
    expected_ttl = {"AttributeName": ttl_attribute, "Enabled": True} if ttl_attribute else None
    assert properties.get("TimeToLiveSpecification") == expected_ttl, (
        "serverless.yml's time to live and infra/table/schema.TTL_ATTRIBUTE differ"
    )


def serverless_yml() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "serverless.yml").read_text()))


# -- serverless.yml as written (fast, no tools) ---------------------------------


def test_table_matches_the_schema() -> None:
    table = serverless_yml()["resources"]["Resources"][TABLE_ID]
    assert table["Type"] == "AWS::DynamoDB::Table"
    assert_same_table_shape(table["Properties"])
    assert table["Properties"]["PointInTimeRecoverySpecification"] == {
        "PointInTimeRecoveryEnabled": True
    }
    assert table["DeletionPolicy"] == "Retain"


def test_the_drift_check_notices_a_changed_index() -> None:
    props = serverless_yml()["resources"]["Resources"][TABLE_ID]["Properties"]
    props["GlobalSecondaryIndexes"][0]["Projection"] = {"ProjectionType": "KEYS_ONLY"}
    with pytest.raises(AssertionError, match="differ"):
        assert_same_table_shape(props)
    props = serverless_yml()["resources"]["Resources"][TABLE_ID]["Properties"]
    props["GlobalSecondaryIndexes"].append(
        {
            "IndexName": "gsi9",
            "KeySchema": [{"AttributeName": "gsi9pk", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "ALL"},
        }
    )
    with pytest.raises(AssertionError, match="differ"):
        assert_same_table_shape(props)


def table_actions() -> set[str]:
    """The IAM actions for the calls infra/table/dynamo.py makes (`self._call("query", ...)`
    and transaction entries `TxEntry({"Put": ...})`), read from its source."""
    source = (ROOT / "infra" / "table" / "dynamo.py").read_text()
    calls = re.findall(r'_call\(\s*"(\w+)"', source) + re.findall(r'TxEntry\(\{"(\w+)"', source)
    unknown = {c for c in calls if c not in IAM_ACTION}
    assert not unknown, f"map these DynamoDB calls to IAM actions here: {unknown}"
    return {action for c in calls if (action := IAM_ACTION[c])}


def test_iam_is_the_table_calls_only() -> None:
    statements = serverless_yml()["provider"]["iam"]["role"]["statements"]
    actions = {a for s in statements for a in s["Action"]}
    expected = table_actions()
    assert {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem"} <= expected
    assert actions == expected, "serverless.yml's IAM and infra/table/dynamo.py's calls differ"
    for statement in statements:
        assert statement["Effect"] == "Allow"
        for resource in statement["Resource"]:
            assert "*" not in json.dumps(resource).replace('"index", "*"', ""), resource
            assert TABLE_ID in json.dumps(resource), resource


# -- osls package, cfn-lint --------------------------------------------------------


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not OSLS.exists():
        pytest.fail(f"osls is not installed ({OSLS}): run `{SCRIPT} --install-tools`")
    outdir = tmp_path_factory.mktemp("serverless") / "package"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SLS_"))}
    proc = subprocess.run(
        ["bash", str(SCRIPT), str(outdir), STAGE, REGION],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"packaging failed:\n{proc.stdout}\n{proc.stderr}"
    return outdir


@pytest.fixture(scope="module")
def template(packaged: Path) -> dict[str, Any]:
    return dict(json.loads((packaged / "cloudformation-template-update-stack.json").read_text()))


def cfn_lint() -> str:
    beside = Path(sys.executable).parent / "cfn-lint"
    found = str(beside) if beside.exists() else shutil.which("cfn-lint")
    if found is None:
        pytest.fail("cfn-lint is not installed (pip package cfn-lint, in the dev extra)")
    return found


def test_template_passes_cfn_lint(packaged: Path) -> None:
    template_path = packaged / "cloudformation-template-update-stack.json"
    # W3005 (a DependsOn already implied by a Ref/GetAtt) only flags what osls
    # itself generates for custom roles and HTTP API routes; everything else,
    # warnings included, fails.
    proc = subprocess.run(
        [cfn_lint(), "--ignore-checks", "W3005", "--", str(template_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"cfn-lint:\n{proc.stdout}\n{proc.stderr}"


def test_template_table_matches_the_schema(template: dict[str, Any]) -> None:
    table = template["Resources"][TABLE_ID]
    assert table["Properties"]["TableName"] == f"corral-{STAGE}"
    assert_same_table_shape(table["Properties"])
    assert table["Properties"]["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"]


def test_template_wires_the_functions(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    functions = {
        r["Properties"]["FunctionName"]: r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::Function"
    }
    assert {f: p["Handler"] for f, p in functions.items()} == {
        f"corral-{STAGE}-api": "handlers.lambda_http.handler",
        f"corral-{STAGE}-sweep": "handlers.lambda_schedule.sweep",
        f"corral-{STAGE}-reconcile": "handlers.lambda_schedule.reconcile",
        f"corral-{STAGE}-checkHosts": "handlers.lambda_schedule.check_hosts",
        f"corral-{STAGE}-collectHealth": "handlers.lambda_schedule.collect_health",
        f"corral-{STAGE}-deliverWebhooks": "handlers.lambda_schedule.deliver_webhooks",
    }
    for props in functions.values():
        assert props["Runtime"] == "python3.11"
        env = props["Environment"]["Variables"]
        assert env["CORRAL_TABLE"] == f"corral-{STAGE}"
        # A reference CloudFormation resolves at deploy time, never a value.
        assert env["CORRAL_REDIS_URL"].startswith("{{resolve:")
    routes = [
        r["Properties"]["RouteKey"]
        for r in resources.values()
        if r["Type"] == "AWS::ApiGatewayV2::Route"
    ]
    assert routes == ["$default"]
    schedules = [
        r["Properties"]["ScheduleExpression"]
        for r in resources.values()
        if r["Type"] == "AWS::Events::Rule"
    ]
    assert schedules == ["rate(1 minute)"] * 5
    # The schedules only enqueue: their role grants logging and nothing else.
    policies = resources["ScheduleRole"]["Properties"]["Policies"]
    actions = {a for p in policies for s in p["PolicyDocument"]["Statement"] for a in s["Action"]}
    assert actions == {"logs:CreateLogStream", "logs:PutLogEvents"}


# -- the artifact on its own ------------------------------------------------------


@pytest.fixture(scope="module")
def unpacked(packaged: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The artifact unzipped as in /var/task, and a stand-in for the runtime's
    own packages (boto3 and its dependencies, linked from this environment)."""
    root = tmp_path_factory.mktemp("lambda")
    with zipfile.ZipFile(ROOT / "build" / "lambda" / "corral.zip") as zf:
        zf.extractall(root / "task")
    runtime = root / "runtime"
    runtime.mkdir()
    import boto3

    site = Path(boto3.__file__).parents[1]
    for name in RUNTIME_MODULES:
        (runtime / name).symlink_to(site / name)
    yield root


def run_in_lambda_layout(unpacked: Path, code: str, env: dict[str, str]) -> Any:
    """Run `code` under `python -S -I`: the zip and the runtime stand-in are all
    there is on sys.path, apart from the standard library."""
    prelude = (
        "import sys, json\n"
        f"sys.path[:0] = [{str(unpacked / 'task')!r}, {str(unpacked / 'runtime')!r}]\n"
    )
    proc = subprocess.run(
        [sys.executable, "-S", "-I", "-c", prelude + code],
        cwd=unpacked,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


DOCS_ASSET = "/docs/swagger-ui.css"


def test_artifact_serves_and_schedules_on_its_own(
    unpacked: Path, deps: Deps, table_endpoint: str, redis_url: str
) -> None:
    env = {"PATH": os.environ.get("PATH", "")} | corral_env(table_endpoint, redis_url)
    code = (
        "from handlers import lambda_http, lambda_schedule\n"
        f"resp = lambda_http.handler({http_api_v2(Request('GET', '/health'))!r}, None)\n"
        f"docs = lambda_http.handler({http_api_v2(Request('GET', DOCS_ASSET))!r}, None)\n"
        f"page = lambda_http.handler({http_api_v2(Request('GET', '/'))!r}, None)\n"
        f"tick = lambda_schedule.sweep({scheduled_event('2026-03-01T12:34:00Z')!r}, None)\n"
        "heavy = [m for m in ('docker', 'paramiko', 'workers', 'infra.drivers', 'devstack')\n"
        "         if m in sys.modules]\n"
        "print(json.dumps({'status': resp['statusCode'], 'body': json.loads(resp['body']),\n"
        "    'tick': tick, 'heavy': heavy, 'docs': docs['statusCode'],\n"
        "    'page': [page['statusCode'],\n"
        "    page['headers']['content-type'], '/web/app.js' in page['body']]}))\n"
    )
    result = run_in_lambda_layout(unpacked, code, env)
    assert result["status"] == 200, result
    assert result["body"]["status"] == "healthy"
    assert result["tick"]["enqueued"] is True
    assert result["heavy"] == []
    assert result["docs"] == 200  # /docs's assets ride in the zip
    # The dashboard's files ship in the artifact (handlers/web/).
    assert result["page"] == [200, "text/html; charset=utf-8", True], result
    assert list(deps.jobs.queue.get_job_ids()) == ["sweep-202603011234"]


def test_artifact_holds_no_worker_or_driver_code(unpacked: Path) -> None:
    task = unpacked / "task"
    assert not (task / "workers").exists()
    for absent in ("docker", "paramiko", "gunicorn", "boto3", "botocore", "moto"):
        assert not (task / absent).exists(), absent
    # Bytecode ships with the sources: /var/task is read-only at run time.
    assert list((task / "handlers" / "__pycache__").glob("lambda_http.cpython-311.pyc"))


def test_artifact_holds_only_the_lambda_part_of_the_project(unpacked: Path) -> None:
    """Of the project's own folders only the Lambda's layers ship, and of infra/ not
    the host drivers: no worker, driver, dev-stack, test or benchmark module."""
    task = unpacked / "task"
    own = {p.name for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith(".")}
    assert {"workers", "devstack", "tests", "bench", "scripts"} <= own
    shipped = {p.name for p in task.iterdir() if p.name in own}
    assert shipped == {"handlers", "services", "infra", "shared"}
    assert not (task / "infra" / "drivers").exists()
    # gunicorn's ASGI app (and a2wsgi, which it needs) is no part of a Lambda.
    assert not (task / "handlers" / "asgi.py").exists()
    assert not (task / "handlers" / "waits.py").exists()
    assert not (task / "infra" / "metrics.py").exists()  # prometheus_client: gunicorn only
    project_files = [f for f in task.rglob("*") if f.relative_to(task).parts[0] in own]
    assert not [f for f in project_files if "drivers" in f.relative_to(task).parts], project_files
    # What ships is whole: every project module imports from the zip alone.
    modules = sorted(
        ".".join(f.relative_to(task).with_suffix("").parts).removesuffix(".__init__")
        for f in project_files
        if f.suffix == ".py"
    )
    code = (
        "import importlib\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(\n"
        "    ('docker', 'paramiko', 'workers', 'infra.drivers', 'devstack')))))\n"
    )
    env = {"PATH": os.environ.get("PATH", ""), "AWS_DEFAULT_REGION": "us-east-1"}
    assert run_in_lambda_layout(unpacked, code, env) == []

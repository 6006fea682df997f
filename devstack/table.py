"""The table server of `make run`, the tests and the benchmarks: AWS's DynamoDB Local,
the emulator AWS publishes for local development (real transaction semantics and
error shapes), shipped in the npm package `amplify-dynamodb-simulator` (pinned in
package-lock.json, installed by `make deps`) and run on Debian's
openjdk-17-jre-headless.

One shared database (`-sharedDb`: every client sees the same tables, whatever its
credentials and region), in memory unless given a directory to keep it in. No
telemetry: nothing leaves the machine.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

from devstack.processes import REPO, Server, StartupError, free_port, listening, start_server
from infra.table.dynamo import Dynamo, make_client
from infra.table.schema import table_definition
from shared.settings import Settings

EMULATOR = REPO / "node_modules" / "amplify-dynamodb-simulator" / "emulator"


def start_table_server(env: dict[str, str], log_path: Path, keep_in: Path | None = None) -> Server:
    """Start DynamoDB Local on a free port and wait until it listens. With `keep_in`,
    its database is a file in that directory, kept between runs; else in memory."""
    port = free_port()
    storage = ["-inMemory"]
    if keep_in is not None:
        keep_in.mkdir(parents=True, exist_ok=True)
        storage = ["-dbPath", str(keep_in)]
    command = emulator_command("-port", str(port), "-sharedDb", *storage, "-disableTelemetry")
    url = f"http://127.0.0.1:{port}"
    # It writes dynamodb-local-metadata.json into its working directory: not the repo.
    return start_server(
        "table server (DynamoDB Local)",
        command,
        env | {"DDB_LOCAL_TELEMETRY": "0"},  # with -disableTelemetry: never phone home
        log_path,
        url,
        lambda: listening(port),
        cwd=log_path.parent,
    )


def emulator_command(*arguments: str) -> list[str]:
    """`java ... -jar DynamoDBLocal.jar` with `arguments` (`-version` prints its version)."""
    java = shutil.which("java")
    if java is None:
        raise StartupError("java is not installed (Debian package openjdk-17-jre-headless)")
    jar = EMULATOR / "DynamoDBLocal.jar"
    if not jar.is_file():
        raise StartupError(f"{jar} is missing: `make deps` installs it (npm ci)")
    library_path = f"-Djava.library.path={EMULATOR / 'DynamoDBLocal_lib'}"
    return [java, library_path, "-jar", str(jar), *arguments]


def table_exists(settings: Settings) -> bool:
    client = make_client(settings)
    return settings.table_name in client.list_tables()["TableNames"]


def open_table(settings: Settings) -> Dynamo:
    """The table that is there already."""
    return Dynamo(make_client(settings), settings.table_name)


def create_table(settings: Settings) -> Dynamo:
    """Create Corral's table (infra.table.schema) on the settings' endpoint."""
    client = make_client(settings)
    client.create_table(**table_definition(settings.table_name))
    client.get_waiter("table_exists").wait(TableName=settings.table_name)
    return Dynamo(client, settings.table_name)


@contextlib.contextmanager
def fresh_table(settings: Settings) -> Iterator[Dynamo]:
    """A new table for the block, deleted after it."""
    dynamo = create_table(settings)
    try:
        yield dynamo
    finally:
        dynamo.client.delete_table(TableName=settings.table_name)

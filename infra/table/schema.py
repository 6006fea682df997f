"""The single table's shape and every key builder, in one place."""

from __future__ import annotations

from datetime import datetime
from typing import Any

META = "#META"

# Partition for listings that have no natural parent, on GSI1.
ALL_CLUSTERS = "CLUSTERS"
ALL_EGGS = "EGGS"
ALL_HOSTS = "HOSTS"
ALL_DATABASE_HOSTS = "DBHOSTS"
ALL_DATABASES = "DATABASES"
GSI1 = "gsi1"
# The platform's own settings: one item.
PLATFORM_PK = "PLATFORM"
SETTINGS_SK = "#SETTINGS"
# GSI2 is sparse: only workloads with an expiry (pk EXPIRY#<shard>, sk <expires_at>#<id>)
# and operations not finished yet (pk PENDING#<shard>, sk <created_at>#<id>) carry its
# keys, so a sweep reads what is due, not the fleet.
GSI2 = "gsi2"
SHARDS = 4


def shard_of(identifier: str) -> int:
    return sum(identifier.encode()) % SHARDS


def expiry_pk(shard: int) -> str:
    return f"EXPIRY#{shard}"


def pending_pk(shard: int) -> str:
    return f"PENDING#{shard}"


def cluster_pk(cluster_id: str) -> str:
    return f"CLUSTER#{cluster_id}"


def workload_sk(workload_id: str) -> str:
    return f"WORKLOAD#{workload_id}"


def operation_sk(operation_id: str) -> str:
    return f"OP#{operation_id}"


def backup_sk(workload_id: str, backup_id: str = "") -> str:
    """A backup, under its cluster; with no backup id, the prefix of a workload's."""
    return f"BACKUP#{workload_id}#{backup_id}"


def egg_pk(egg_id: str) -> str:
    return f"EGG#{egg_id}"


def host_pk(host_id: str) -> str:
    return f"HOST#{host_id}"


def database_host_pk(host_id: str) -> str:
    return f"DBHOST#{host_id}"


def database_sk(database_id: str) -> str:
    """A managed database, under its cluster."""
    return f"DATABASE#{database_id}"


def database_name_sk(name: str) -> str:
    """The guard that keeps database names unique in a cluster."""
    return f"DBNAME#{name}"


def port_sk(port: int) -> str:
    """A host port held by a workload, under its host's partition (`HOST#<id>`)."""
    return f"{PORT_PREFIX}{port:05d}"


PORT_PREFIX = "PORT#"


def key_pk(key_hash: str) -> str:
    return f"KEY#{key_hash}"


def idempotency_pk(key_id: str) -> str:
    """The partition of an API key's idempotency records (infra/table/idempotency.py)."""
    return f"IDEM#{key_id}"


def keys_of(cluster_id: str | None) -> str:
    """GSI1 partition listing the keys of a cluster, or the operator keys."""
    return f"KEYS#{cluster_id or 'OPERATOR'}"


# DynamoDB's time-to-live attribute: gone workloads and finished operations are
# dropped by the table itself after the retention period.
TTL_ATTRIBUTE = "ttl"
RETENTION_SECONDS = 7 * 24 * 3600


def expires_epoch(now: datetime) -> int:
    """The `ttl` value for a record that is finished at `now`."""
    return int(now.timestamp()) + RETENTION_SECONDS


def table_definition(table_name: str) -> dict[str, Any]:
    """Arguments for CreateTable; serverless.yml declares the same shape."""
    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "gsi1pk", "AttributeType": "S"},
            {"AttributeName": "gsi1sk", "AttributeType": "S"},
            {"AttributeName": "gsi2pk", "AttributeType": "S"},
            {"AttributeName": "gsi2sk", "AttributeType": "S"},
        ],
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": GSI1,
                "KeySchema": [
                    {"AttributeName": "gsi1pk", "KeyType": "HASH"},
                    {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            },
            {
                "IndexName": GSI2,
                "KeySchema": [
                    {"AttributeName": "gsi2pk", "KeyType": "HASH"},
                    {"AttributeName": "gsi2sk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            },
        ],
    }

"""The rq worker class Corral runs (`rq worker -w workers.worker.CorralWorker`).

rq forks a work horse for every job. A plain worker has loaded none of Corral, so
each horse imports the job modules and builds boto3's service model again: about
a third of a second per job, more than a power operation's own work. Loading them
here, in the parent, before any fork, means every horse starts with them loaded.
Nothing that holds a connection is made here: sockets must not be shared with the
horses, so each job still opens its own."""

from __future__ import annotations

import boto3
from rq.utils import import_attribute
from rq.worker import Worker

from infra.jobs import JOBS

# Every registered job, imported as rq imports it in the horse.
PRELOADED = tuple(import_attribute(job.function) for job in JOBS)

# Building one client loads and caches the DynamoDB service model in boto3's default
# session; the horses' clients then come from that cache. It makes no network call.
boto3.client("dynamodb", region_name="us-east-1")


class CorralWorker(Worker):
    """rq's forking worker, with Corral's job code already imported."""

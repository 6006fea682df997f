"""Operators' image operations: pre-pull an image on hosts, remove one from a host
(refused while a workload there uses it). Each is an operation on one host, written
to the table, then enqueued; workers/images.py carries it out."""

from __future__ import annotations

from services import operations
from services.deps import Deps
from shared.admin_requests import ImageDelete, ImagePull
from shared.errors import ImageInUse, InvalidInput, NoHostAvailable
from shared.models import FLEET_OPERATIONS, Engine, Host, HostStatus, Operation, OperationParams
from shared.states import OperationKind


class ImageService:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._repo = deps.repo

    def pull(self, body: ImagePull) -> list[Operation]:
        if body.egg_id is not None:
            self._repo.eggs.get(body.egg_id)  # NotFound when it is not one
        if body.host_ids is not None:
            hosts = [self._docker_host(host_id) for host_id in dict.fromkeys(body.host_ids)]
        else:
            hosts = [
                h
                for h in self._repo.hosts.list()
                if Engine.DOCKER in h.engines and h.status != HostStatus.DOWN
            ]
        if not hosts:
            raise NoHostAvailable("No docker host is up to pull the image on.")
        params = [
            OperationParams(host_id=h.id, image=body.image, egg_id=body.egg_id) for h in hosts
        ]
        return [self._start(OperationKind.IMAGE_PULL, p) for p in params]

    def delete(self, body: ImageDelete) -> Operation:
        host = self._docker_host(body.host_id)
        images = {e.id: e.image for e in self._repo.eggs.list()}
        users = [
            w.name
            for w in self._repo.workloads.on_host(host.id)
            if not w.status.is_gone and images.get(w.egg_id) == body.image
        ]
        if users:
            raise ImageInUse(
                f"Image '{body.image}' is used by {len(users)} workload(s) on host "
                f"{host.name}; delete them or switch their eggs first."
            )
        params = OperationParams(host_id=host.id, image=body.image)
        return self._start(OperationKind.IMAGE_DELETE, params)

    def _docker_host(self, host_id: str) -> Host:
        host = self._repo.hosts.get(host_id)
        if Engine.DOCKER not in host.engines:
            raise InvalidInput(f"Host {host.name} runs no docker workloads: it has no images.")
        return host

    def _start(self, kind: OperationKind, params: OperationParams) -> Operation:
        op = operations.queued(
            self._deps.new_operation_id(), FLEET_OPERATIONS, "", kind, params, self._deps.clock()
        )
        self._repo.db.transact([self._repo.operations.put_new(op)])
        operations.enqueue(self._deps.jobs, op)
        return op

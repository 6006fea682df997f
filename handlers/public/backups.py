"""A container's backups: list and take them, read one, restore it, delete it, and
download its archive (streamed from the backup store, never read whole)."""

from __future__ import annotations

import falcon

from handlers import shapes, views
from handlers.auth import TENANT
from handlers.body import body_as, path_id
from handlers.declare import responds
from handlers.pages import PAGE_QUERIES, paged
from services.backups import BackupService
from services.deps import Deps
from shared.backups import Backup
from shared.errors import ActionNotAllowed, CapacityExceeded, Conflict
from shared.models import Operation
from shared.requests import BackupCreate


class _BackupResource:
    auth = TENANT

    def __init__(self, deps: Deps, backups: BackupService) -> None:
        self._deps = deps
        self._backups = backups

    @staticmethod
    def _ids(req: falcon.Request, container_id: str, backup_id: str) -> tuple[str, str, str]:
        """(cluster, container, backup) ids of a backup's route, shapes checked."""
        return (
            req.context.principal.cluster_id,
            path_id(container_id, "Container"),
            path_id(backup_id, "Backup"),
        )

    @staticmethod
    def _accepted(resp: falcon.Response, result: tuple[Backup, Operation]) -> None:
        resp.status = falcon.HTTP_202
        resp.media = views.backup_accepted(*result)


class BackupCollection(_BackupResource):
    """GET|POST /containers/:id/backups"""

    @responds(200, list[shapes.BackupView], query=PAGE_QUERIES)
    def on_get(self, req: falcon.Request, resp: falcon.Response, container_id: str) -> None:
        cluster_id = req.context.principal.cluster_id
        backups = self._backups.list(cluster_id, path_id(container_id, "Container"))
        listed = paged(req, resp, self._deps.settings, backups)
        resp.media = [views.backup(b) for b in listed]

    @responds(
        202,
        shapes.BackupAcceptedView,
        body=BackupCreate,
        body_optional=True,
        errors=(CapacityExceeded, ActionNotAllowed, Conflict),
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response, container_id: str) -> None:
        path_id(container_id, "Container")
        body = (
            body_as(req, BackupCreate, self._deps.settings.max_body_bytes)
            if req.content_length
            else BackupCreate()
        )
        cluster_id = req.context.principal.cluster_id
        self._accepted(resp, self._backups.create(cluster_id, container_id, body))


class BackupItem(_BackupResource):
    """GET|DELETE /containers/:id/backups/:backup_id"""

    @responds(200, shapes.BackupView)
    def on_get(
        self, req: falcon.Request, resp: falcon.Response, container_id: str, backup_id: str
    ) -> None:
        resp.media = views.backup(self._backups.get(*self._ids(req, container_id, backup_id)))

    @responds(204, None, also={202: shapes.BackupAcceptedView}, errors=(ActionNotAllowed, Conflict))
    def on_delete(
        self, req: falcon.Request, resp: falcon.Response, container_id: str, backup_id: str
    ) -> None:
        result = self._backups.delete(*self._ids(req, container_id, backup_id))
        if result is None:
            resp.status = falcon.HTTP_204
            return
        self._accepted(resp, result)


class BackupRestore(_BackupResource):
    """POST /containers/:id/backups/:backup_id/restore"""

    @responds(202, shapes.BackupAcceptedView, errors=(ActionNotAllowed, CapacityExceeded, Conflict))
    def on_post(
        self, req: falcon.Request, resp: falcon.Response, container_id: str, backup_id: str
    ) -> None:
        self._accepted(resp, self._backups.restore(*self._ids(req, container_id, backup_id)))


class BackupDownload(_BackupResource):
    """GET /containers/:id/backups/:backup_id/download: the tar archive, streamed."""

    @responds(200, str, media_type="application/x-tar", errors=(ActionNotAllowed,))
    def on_get(
        self, req: falcon.Request, resp: falcon.Response, container_id: str, backup_id: str
    ) -> None:
        backup, chunks = self._backups.download(*self._ids(req, container_id, backup_id))
        resp.content_type = "application/x-tar"
        resp.downloadable_as = f"backup-{backup.id}.tar"
        if backup.size_bytes is not None:
            resp.content_length = backup.size_bytes
        if backup.checksum is not None:
            resp.set_header("X-Checksum-Sha256", backup.checksum)
        resp.stream = chunks

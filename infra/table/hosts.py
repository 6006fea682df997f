"""Hosts: the item `HOST#<id>` / `#META` (listed on GSI1 under `HOSTS`), its health and
drain flag, and the counters it carries (`used_*`, `workload_count`), which move with
the workloads placed on it. The `load` map is the collector's (see `health`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from infra.table import schema
from infra.table.attributes import Item, moment, resources_attrs, resources_from
from infra.table.clusters import move_used
from infra.table.dynamo import Dynamo, TxEntry
from infra.table.expression import Expression
from infra.table.health import load_attr, load_from
from infra.table.placement import PlacementStore, shard_of_host, unchanged_refusal
from shared.allocations import no_free_ports, range_size
from shared.capacity import Resources, below_zero, shortfall, shortfall_message
from shared.changes import record_change
from shared.clock import iso, parse_iso, stamp
from shared.errors import Conflict, CorralError, HostInUse, NoHostAvailable, NotFound
from shared.events import Change
from shared.models import DriverKind, Engine, Host, HostStatus, host_status
from shared.placement import HOST_DIMENSIONS, allocated_range


def host_item(h: Host) -> Item:
    return {
        "pk": schema.host_pk(h.id),
        "sk": schema.META,
        "gsi1pk": schema.ALL_HOSTS,
        "gsi1sk": h.id,
        "type": "host",
        "id": h.id,
        "name": h.name,
        "driver": h.driver.value,
        "address": h.address,
        "engines": [e.value for e in h.engines],
        **resources_attrs("cap", h.capacity),
        **resources_attrs("used", h.used),
        "workload_count": h.workload_count,
        "status": h.status.value,
        "labels": dict(h.labels),
        "tls": dict(h.tls),
        "created_at": iso(h.created_at),
        "updated_at": iso(h.updated_at),
        "last_heartbeat": iso(h.last_heartbeat),
        "health": h.health.value,
        "draining": h.draining,
        "images": list(h.images),
        "ssh": dict(h.ssh),
        "port_range": list(h.port_range) if h.port_range else None,
        "public_address": h.public_address,
        "load": load_attr(h.load),
        "version": h.version,
    }


def host_from(item: Item) -> Host:
    return Host(
        id=item["id"],
        name=item["name"],
        driver=DriverKind(item["driver"]),
        address=item["address"],
        engines=tuple(Engine(e) for e in item.get("engines", [])),
        capacity=resources_from("cap", item),
        used=resources_from("used", item),
        workload_count=int(item.get("workload_count", 0)),
        status=HostStatus(item["status"]),
        labels=dict(item.get("labels", {})),
        tls=dict(item.get("tls", {})),
        created_at=moment(item["created_at"]),
        updated_at=moment(item["updated_at"]),
        last_heartbeat=parse_iso(item.get("last_heartbeat")),
        health=HostStatus(item.get("health", HostStatus.READY.value)),
        draining=bool(item.get("draining", False)),
        images=tuple(item.get("images", [])),
        ssh=dict(item.get("ssh", {})),
        port_range=_port_range(item.get("port_range")),
        public_address=item.get("public_address"),
        load=load_from(item.get("load")),
        version=int(item.get("version", 1)),
    )


def _port_range(value: list[int] | None) -> tuple[int, int] | None:
    return (int(value[0]), int(value[1])) if value else None


class HostStore:
    """Hosts, and their copy in the placement summary: every write that changes what the
    summary copies writes the summary in the same transaction (`_with_summary`)."""

    def __init__(self, db: Dynamo, placement: PlacementStore) -> None:
        self.db = db
        self.placement = placement

    def get(self, host_id: str) -> Host:
        item = self.db.get(schema.host_pk(host_id), schema.META)
        if item is None:
            raise NotFound("Host not found.")
        return host_from(item)

    def get_many(self, host_ids: Sequence[str]) -> list[Host]:
        """The hosts of `host_ids` that exist, in that order (strongly consistent)."""
        found = self.db.get_many([(schema.host_pk(h), schema.META) for h in host_ids])
        return [
            host_from(found[key])
            for h in host_ids
            if (key := (schema.host_pk(h), schema.META)) in found
        ]

    def list(self) -> list[Host]:
        return [host_from(i) for i in self.db.query(schema.ALL_HOSTS, index=schema.GSI1)]

    def create(self, host: Host) -> None:
        put = self.db.tx_put(
            host_item(host),
            Expression().when_absent(),
            on_fail=lambda _: Conflict("Host already exists."),
        )
        change = record_change("host", "created", host.id, None, {"name": host.name})
        self.db.transact([put, *self.placement.enter(host, new=True)], events=[change])
        self.placement.occupied.entered(shard_of_host(host.id))

    def set_draining(self, host: Host, draining: bool, now: datetime) -> Host:
        """Drain or undrain, conditioned on the health that was read."""
        write = Expression().set_all(
            {
                "draining": draining,
                "status": host_status(host.health, draining).value,
                "updated_at": stamp(now),
            }
        )
        write.when_equal("health", host.health.value)
        after = {"draining": draining}
        change = record_change(
            "host", "draining" if draining else "undrained", host.id, None, after
        )
        changed = replace(host, draining=draining, status=host_status(host.health, draining))
        return self._with_summary(host, changed, write, "The host's health changed; retry.", change)

    def set_reach(self, host: Host, changed: Host, now: datetime) -> Host:
        """Store `changed`'s public address and port range, if the host is as read
        (a placement or release meanwhile bumps its version: Conflict, retry)."""
        write = Expression().set_all(
            {
                "public_address": changed.public_address,
                "port_range": list(changed.port_range) if changed.port_range else None,
                "updated_at": stamp(now),
            }
        )
        write.add("version", 1).when_equal("version", host.version)
        before = {"public_address": host.public_address, "port_range": host.port_range}
        after = {"public_address": changed.public_address, "port_range": changed.port_range}
        change = record_change("host", "updated", host.id, None, after, before)
        return self._with_summary(
            host, changed, write, "The host changed meanwhile; retry.", change
        )

    def record_health(
        self,
        host: Host,
        health: HostStatus,
        now: datetime,
        *,
        heartbeat: datetime | None,
        images: tuple[str, ...] | None = None,
    ) -> Host:
        """Store what the health check measured, conditioned on the drain flag read."""
        write = Expression().set_all(
            {
                "health": health.value,
                "status": host_status(health, host.draining).value,
                "updated_at": stamp(now),
            }
        )
        if heartbeat is not None:
            write.set("last_heartbeat", stamp(heartbeat))
        if images is not None:
            write.set("images", list(images))
        write.when_equal("draining", host.draining)
        measured = replace(
            host,
            health=health,
            status=host_status(health, host.draining),
            images=host.images if images is None else tuple(images),
        )
        # A health check that changes the host's status is a change; a heartbeat is not.
        changes = []
        if measured.status != host.status:
            before, after = {"status": host.status.value}, {"status": measured.status.value}
            changes.append(
                record_change("host", measured.status.value, host.id, None, after, before)
            )
        changed = "The host's drain flag changed; retry."
        if (measured.status, measured.images) == (host.status, host.images):
            # the summary holds neither
            return self._update_as_read(host, write, changed, *changes)
        return self._with_summary(host, measured, write, changed, *changes)

    def sync_placement(self, host: Host) -> bool:
        """Make the placement summary's copy of `host` exact, if the host is still as
        read (its version, status and images): the host check's repair of a summary
        that lags. False when the host changed meanwhile."""
        unchanged = Expression().when_equal("version", host.version)
        unchanged.when_equal("status", host.status.value)
        unchanged.when_equal("images", list(host.images))
        check = self.db.tx_check(
            schema.host_pk(host.id), schema.META, unchanged, on_fail=unchanged_refusal
        )
        return self.placement.sync(host, check)

    def holds(self, host_id: str, workloads: int) -> TxEntry:
        """A check that the host holds exactly `workloads` live workloads."""
        holds = Expression().when_equal("workload_count", workloads)
        return self.db.tx_check(
            schema.host_pk(host_id), schema.META, holds, on_fail=unchanged_refusal
        )

    def _with_summary(
        self, host: Host, changed: Host, write: Expression, refusal: str, *changes: Change
    ) -> Host:
        """`_update_as_read`, and copy `changed` (the host as `write` leaves it) into the
        placement summary in the same transaction."""
        update = self.db.tx_update(
            schema.host_pk(host.id),
            schema.META,
            write.when_exists(),
            on_fail=lambda old: NotFound("Host not found.") if old is None else Conflict(refusal),
        )
        self.db.transact([update, self.placement.describe(changed)], events=changes)
        return self.get(host.id)

    def _update_as_read(
        self, host: Host, write: Expression, changed: str, *changes: Change
    ) -> Host:
        """Apply `write` if the host exists and `write`'s condition on what was read
        holds; otherwise the host is gone (NotFound) or `changed` (Conflict)."""
        item = self.db.update(
            schema.host_pk(host.id),
            schema.META,
            write.when_exists(),
            on_fail=lambda old: NotFound("Host not found.") if old is None else Conflict(changed),
            events=changes,
        )
        return host_from(item)

    def delete(self, host_id: str, *, force: bool) -> None:
        def refuse(old: Item | None) -> CorralError:
            if old is None:
                return NotFound("Host not found.")
            count = int(old.get("workload_count", 0))
            return HostInUse(
                f"The host still holds {count} workloads; drain it and move or delete them, "
                "or delete with ?force=true."
            )

        condition = Expression().when_exists()
        if not force:
            condition.when_equal("workload_count", 0)
        change = record_change("host", "deleted", host_id, None)
        remove = self.db.tx_delete(schema.host_pk(host_id), schema.META, condition, on_fail=refuse)
        self.db.transact([remove, self.placement.forget(host_id)], events=[change])

    # -- transaction entries -----------------------------------------------------

    def reserve(self, host: Host, delta: Resources, count: int, now: datetime) -> TxEntry:
        """Move the counters by `delta` and `count` workloads; growth is checked against
        the capacity that was read, and a host that gains anything must be ready."""
        write = move_used(Expression(), delta, "workload_count", count)
        write.set("updated_at", stamp(now))
        growing = [name for name in HOST_DIMENSIONS if getattr(delta, name) > 0]
        if growing or count != 0:
            write.when_equal("status", HostStatus.READY.value)
        else:
            write.when_exists()
        for name in growing:
            write.when_at_most(f"used_{name}", getattr(host.capacity, name) - getattr(delta, name))
            write.when_equal(f"cap_{name}", getattr(host.capacity, name))
        ports_range = allocated_range(host)
        if delta.ports > 0 and ports_range is not None:
            # The held ports (items of their own) are checked one by one; this keeps the
            # count within the range as it was read, and the range as it was read.
            write.when_at_most("used_ports", range_size(ports_range) - delta.ports)
            if host.port_range is None:
                write.when_absent("port_range")
            else:
                write.when_equal("port_range", list(host.port_range))

        def refuse(old: Item | None) -> CorralError:
            if old is None:
                return NoHostAvailable("The chosen host was removed; retry.")
            current = host_from(old)
            if current.status != HostStatus.READY:
                return NoHostAvailable(f"Host {current.name} is {current.status.value}; retry.")
            if ports_range is not None and current.port_range != host.port_range:
                return NoHostAvailable(f"Host {current.name}'s port range changed; retry.")
            if ports_range is not None and delta.ports > 0:
                free = range_size(ports_range) - current.used.ports
                if free < delta.ports:
                    return NoHostAvailable(
                        no_free_ports(current.name, ports_range, free, delta.ports)
                    )
            short = shortfall(current.capacity, current.used, delta.positive_part())
            if short:
                return NoHostAvailable(shortfall_message(short, f"host {current.name}"))
            negative = below_zero(current.used, delta)
            if negative:
                return Conflict(f"Host {current.name}'s {negative} in use would go below zero.")
            return Conflict("The host changed; retry.")

        return self.db.tx_update(schema.host_pk(host.id), schema.META, write, on_fail=refuse)

    def release(self, host_id: str, resources: Resources, now: datetime) -> TxEntry:
        """Give one gone workload's resources back."""
        write = move_used(Expression(), Resources() - resources, "workload_count", -1)
        write.set("updated_at", stamp(now))
        return self.db.tx_update(schema.host_pk(host_id), schema.META, write)

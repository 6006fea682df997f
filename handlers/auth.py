"""Authentication: an API key, or a token exchanged for one (shared/tokens.py), as a
bearer (`Authorization: Bearer ...`) or in `X-API-Key` (002's header). Keys are looked
up by hash, and a token by the hash of the key it stands for; a short-lived cache in
Redis spares the table a read on every request, and revocation or a cluster
status change drops the cached entry *before* it writes the table, so it takes
effect at once: when Redis fails at that moment the change fails with nothing
written, and the retry (idempotent) does both.

Each process also holds the principals it has read from that cache, and a request
whose principal it holds confirms in the round trip that takes its rate-limit tokens
that Redis still caches the very same principal (infra.rate_limits.Held): one round
trip a request, and Redis's entry stays the one authority (a revocation's tombstone, or
the entry's expiry, sends the next request back to the cache and the table)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import falcon
from redis.exceptions import RedisError

from infra.rate_limits import Held, RateLimiter, Verdict
from services.deps import Deps
from shared.clock import iso, parse_iso
from shared.errors import (
    CorralError,
    Forbidden,
    InvalidCluster,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
)
from shared.events import set_actor
from shared.keys import DELETE, READ, VERBS, WRITE, KeyScope, hash_secret
from shared.models import ClusterStatus
from shared.tokens import TokenClaims, looks_like_token
from shared.tokens import sign as sign_token
from shared.tokens import verify as verify_token

log = logging.getLogger("corral.auth")

TENANT = "tenant"
OPERATOR = "operator"
PUBLIC = "public"
ANY_KEY = "any_key"  # a tenant's or an operator's
MAX_CREDENTIAL_LENGTH = 1024

CACHE_PREFIX = "corral:auth:"
# Marks a principal just changed: not cached until it expires (it must outlast the
# slowest table read of a request that started before the change).
TOMBSTONE = b"-"
TOMBSTONE_SECONDS = 60
LAST_USED_EVERY_SECONDS = 300
# Principals a process holds at most (one per key it served lately); past that it
# forgets them all and reads them again, one round trip more each.
HELD_PRINCIPALS = 4096


@dataclass(frozen=True)
class Principal:
    key_id: str
    cluster_id: str | None
    cluster_status: str | None
    scope: KeyScope = field(default_factory=KeyScope)
    # Requests a minute this key may make (its cluster's plan); None: the default.
    rate_limit: int | None = None
    # Requests a minute all the cluster's keys together may make; None: the default.
    cluster_rate_limit: int | None = None

    @property
    def is_operator(self) -> bool:
        return self.cluster_id is None

    def to_json(self) -> str:
        scope = self.scope
        return json.dumps(
            {
                "key_id": self.key_id,
                "cluster_id": self.cluster_id,
                "cluster_status": self.cluster_status,
                "verbs": list(scope.verbs),
                "container_ids": _listed(scope.container_ids),
                "egg_ids": _listed(scope.egg_ids),
                "expires_at": iso(scope.expires_at),
                "rate_limit": self.rate_limit,
                "cluster_rate_limit": self.cluster_rate_limit,
            }
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> Principal:
        data = json.loads(raw)
        return cls(
            key_id=data["key_id"],
            cluster_id=data["cluster_id"],
            cluster_status=data["cluster_status"],
            scope=KeyScope(
                verbs=tuple(data.get("verbs") or VERBS),
                container_ids=_ids(data.get("container_ids")),
                egg_ids=_ids(data.get("egg_ids")),
                expires_at=parse_iso(data.get("expires_at")),
            ),
            rate_limit=data.get("rate_limit"),
            cluster_rate_limit=data.get("cluster_rate_limit"),
        )


def _listed(ids: tuple[str, ...] | None) -> list[str] | None:
    return list(ids) if ids is not None else None


def _ids(ids: list[str] | None) -> tuple[str, ...] | None:
    return tuple(ids) if ids is not None else None


USED_PREFIX = "corral:key-used:"
# The cached principal (nil when absent or a tombstone) and, for a cached one, whether
# its key is used for the first time in LAST_USED_EVERY_SECONDS (then the table
# records the use). Never marks an unknown key: a made-up bearer leaves nothing behind.
LOOKUP_SCRIPT = """
local principal = redis.call('GET', KEYS[1])
if not principal or principal == ARGV[1] then
  return {false, 0}
end
local first = redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[2])
return {principal, first and 1 or 0}
"""


def cache_key(key_hash: str) -> str:
    return CACHE_PREFIX + key_hash


def used_key(key_hash: str) -> str:
    return USED_PREFIX + key_hash


class Authenticator:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._lookup = deps.redis.register_script(LOOKUP_SCRIPT)
        settings = deps.settings
        self.limiter = RateLimiter(
            deps.redis, settings.rate_limit_per_minute, settings.cluster_rate_limit_per_minute
        )
        # key hash -> the principal, and the cache entry it was read from (thread-safe:
        # single dict operations).
        self._held: dict[str, tuple[Principal, bytes]] = {}

    def principal(self, authorization: str | None, api_key: str | None = None) -> Principal:
        """Who presents these headers: the bearer, else X-API-Key; a key or a token."""
        key_hash, claimed_key_id = self._key_of(credential_of(authorization, api_key))
        return self._claimed(self.key_principal(key_hash), claimed_key_id)

    def admit(
        self,
        authorization: str | None,
        api_key: str | None,
        check: Callable[[Principal], None],
    ) -> tuple[Principal, Verdict | None]:
        """`principal`, let through by `check` (which raises to refuse it), with a token
        taken from its rate-limit buckets: the request path of every route that takes a
        key. One round trip to Redis when this process holds the principal and Redis
        still caches it; else the cache (or the table), then the buckets."""
        key_hash, claimed_key_id = self._key_of(credential_of(authorization, api_key))
        held = self._held.get(key_hash)
        if held is not None:
            principal, raw = held
            if self._passes(principal, claimed_key_id, check):
                taken = self.limiter.take_holding(
                    Held(cache_key(key_hash), raw, used_key(key_hash), LAST_USED_EVERY_SECONDS),
                    *limits_of(principal),
                )
                if taken is not None:
                    if taken.marked:
                        self._deps.repo.keys.touch(key_hash, self._deps.clock())
                    return principal, taken.verdict
            self._held.pop(key_hash, None)
        principal = self._claimed(self.key_principal(key_hash), claimed_key_id)
        check(principal)
        return principal, self.limiter.take(*limits_of(principal))

    def _key_of(self, credential: str) -> tuple[str, str | None]:
        """The hash of the key a credential stands for, and the key id a token claims."""
        if looks_like_token(credential):
            claims = self.claims(credential)
            return claims.key_hash, claims.key_id
        return hash_secret(credential), None

    @staticmethod
    def _claimed(principal: Principal, claimed_key_id: str | None) -> Principal:
        if claimed_key_id is not None and principal.key_id != claimed_key_id:
            raise Unauthorized()
        return principal

    def _passes(
        self, principal: Principal, claimed_key_id: str | None, check: Callable[[Principal], None]
    ) -> bool:
        """Whether a held principal would be let in. One that would not is read afresh
        before the request is refused: the refusal must hold for the principal as Redis
        and the table have it now (a cluster reactivated since, say)."""
        try:
            check(self._claimed(principal, claimed_key_id))
        except CorralError:
            return False
        return not principal.scope.expired(self._deps.clock())

    def claims(self, token: str) -> TokenClaims:
        secret = self._deps.settings.token_secret
        if secret is None:
            raise Unauthorized("Token login is not enabled here; use an API key.")
        return verify_token(token, secret, int(self._deps.clock().timestamp()))

    def login(self, api_key: str) -> tuple[str, Principal, TokenClaims]:
        """A token for a valid key (never for a token: a token cannot outlive its own
        expiry by being exchanged again)."""
        secret = self._deps.settings.token_secret
        if secret is None:
            raise ServiceUnavailable("Token login is not enabled here (CORRAL_TOKEN_SECRET).")
        if looks_like_token(api_key) or not api_key or len(api_key) > MAX_CREDENTIAL_LENGTH:
            raise Unauthorized("api_key must be an API key.")
        key_hash = hash_secret(api_key)
        principal = self.key_principal(key_hash)
        now = int(self._deps.clock().timestamp())
        claims = TokenClaims(
            key_id=principal.key_id,
            key_hash=key_hash,
            issued_at=now,
            expires_at=now + self._deps.settings.token_ttl_seconds,
        )
        return sign_token(claims, secret), principal, claims

    def key_principal(self, key_hash: str) -> Principal:
        cached, first_use = self._cached(key_hash)
        if cached is None:
            principal = self._load(key_hash)
            first_use = self._mark_used(key_hash)
        else:
            principal = cached
        if principal.scope.expired(self._deps.clock()):
            raise Unauthorized("The key has expired.")
        if first_use:
            self._deps.repo.keys.touch(key_hash, self._deps.clock())
        return principal

    def forget(self, key_hashes: list[str]) -> None:
        """Drop cached principals, before a revocation or a cluster status change is
        written to the table.

        A tombstone, not a delete: a request that reads the key from the table while
        the change is being written must not cache its stale principal (it caches only
        with SET NX), and the tombstone outlasts the write, so the change holds from
        the very next request. Redis failing here fails the change before anything is
        written (503, retry)."""
        if not key_hashes:
            return
        try:
            with self._deps.redis.pipeline(transaction=False) as pipe:
                for key_hash in key_hashes:
                    pipe.set(cache_key(key_hash), TOMBSTONE, ex=TOMBSTONE_SECONDS)
                pipe.execute()
        except RedisError as exc:
            log.warning("auth cache unavailable; change refused before it was written: %s", exc)
            raise ServiceUnavailable(
                "The key cache could not be cleared, so nothing was changed; retry."
            ) from exc

    def _cached(self, key_hash: str) -> tuple[Principal | None, bool]:
        """The cached principal, and whether this is the key's first use in a while:
        one round trip to Redis (a script), the hot path of every request."""
        try:
            raw, first_use = self._lookup(
                keys=[cache_key(key_hash), used_key(key_hash)],
                args=[TOMBSTONE, LAST_USED_EVERY_SECONDS],
            )
        except RedisError:
            return None, False
        if raw is None:
            return None, False
        principal = Principal.from_json(raw)
        if len(self._held) >= HELD_PRINCIPALS:
            self._held.clear()
        self._held[key_hash] = (principal, raw)
        return principal, bool(first_use)

    def _load(self, key_hash: str) -> Principal:
        repo = self._deps.repo
        key = repo.keys.find(key_hash)
        if key is None or key.revoked:
            raise Unauthorized()
        cluster = repo.clusters.get(key.cluster_id) if key.cluster_id else None
        principal = Principal(
            key_id=key.id,
            cluster_id=key.cluster_id,
            cluster_status=cluster.status.value if cluster else None,
            scope=key.scope,
            rate_limit=cluster.plan.requests_per_minute if cluster else None,
            cluster_rate_limit=cluster.plan.cluster_requests_per_minute if cluster else None,
        )
        try:
            self._deps.redis.set(
                cache_key(key_hash),
                principal.to_json(),
                ex=self._deps.settings.key_cache_seconds,
                nx=True,
            )
        except RedisError:
            log.warning("auth cache unavailable; reading keys from the table")
        return principal

    def _mark_used(self, key_hash: str) -> bool:
        """Whether this is the key's first use in a while (last use is recorded at most
        every few minutes, not on every request)."""
        try:
            return bool(
                self._deps.redis.set(used_key(key_hash), 1, nx=True, ex=LAST_USED_EVERY_SECONDS)
            )
        except RedisError:
            return False


def credential_of(authorization: str | None, api_key: str | None) -> str:
    if authorization is not None:
        scheme, _, credential = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":  # the scheme is case-insensitive (RFC 7235)
            raise Unauthorized()
    else:
        credential = api_key or ""
    credential = credential.strip()
    if not credential or len(credential) > MAX_CREDENTIAL_LENGTH:
        raise Unauthorized()
    return credential


class AuthMiddleware:
    """Resources declare `auth = TENANT | OPERATOR | ANY_KEY | PUBLIC`; default is
    OPERATOR."""

    def __init__(self, authenticator: Authenticator) -> None:
        self._auth = authenticator

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        set_actor(None)  # request threads are reused: no actor until a key is checked

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, params: Any
    ) -> None:
        if resource is None or req.method == "OPTIONS":
            return
        scope = getattr(resource, "auth", OPERATOR)
        if scope == PUBLIC:
            return
        principal, verdict = self._auth.admit(
            req.get_header("Authorization"),
            req.get_header("X-API-Key"),
            ROUTE_CHECKS.get(scope, check_operator),
        )
        if verdict is not None:
            for name, value in verdict.headers().items():
                resp.set_header(name, value)
            if not verdict.allowed:
                raise TooManyRequests(
                    verdict.retry_after_seconds,
                    f"This API key (or its cluster's keys together) may make {verdict.limit}"
                    f" requests a minute; retry after {verdict.retry_after_seconds} s.",
                )
        check_scope(principal.scope, verb_of(resource, req.method), params)
        req.context.principal = principal
        set_actor(principal.key_id)  # the events of what this request commits name it


def limits_of(principal: Principal) -> tuple[str, int | None, str | None, int | None]:
    """RateLimiter.take's arguments for a principal's buckets."""
    return (
        principal.key_id,
        principal.rate_limit,
        principal.cluster_id,
        principal.cluster_rate_limit,
    )


def check_tenant(principal: Principal) -> None:
    if principal.is_operator:
        raise Unauthorized("This route takes a cluster API key.")
    if principal.cluster_status != ClusterStatus.ACTIVE.value:
        raise InvalidCluster(f"Cluster is {principal.cluster_status}.")


def check_operator(principal: Principal) -> None:
    if not principal.is_operator:
        raise Unauthorized("This route takes an operator key.")


def check_any_key(principal: Principal) -> None:
    """Any valid key will do."""


# Who each `auth` value lets in (PUBLIC routes take no key at all).
ROUTE_CHECKS: dict[str, Callable[[Principal], None]] = {
    TENANT: check_tenant,
    OPERATOR: check_operator,
    ANY_KEY: check_any_key,
}


# Path parameters that name a container or an egg, checked against a key's scope.
CONTAINER_PARAMS = ("container_id", "instance_id")
EGG_PARAMS = ("egg_id", "template_id")


def verb_of(resource: Any, method: str) -> str:
    """What a route does, as a key's scope names it: GET reads, DELETE deletes, a
    resource may say it powers (`verb = POWER`), and every other write writes."""
    if method in ("GET", "HEAD"):
        return READ
    if method == "DELETE":
        return DELETE
    return str(getattr(resource, "verb", WRITE))


def check_new_container(scope: KeyScope, egg_id: str) -> None:
    """A key narrowed to some containers makes no new ones; one narrowed to some eggs
    makes (or switches to) only those."""
    if scope.container_ids is not None:
        raise Forbidden("This key is limited to some containers; it cannot create others.")
    if not scope.allows_egg(egg_id):
        raise Forbidden("This key is not allowed this egg.")


def check_scope(scope: KeyScope, verb: str, params: Any) -> None:
    if not scope.allows_verb(verb):
        raise Forbidden(f"This key may not {verb} (its verbs: {', '.join(scope.verbs)}).")
    for name in CONTAINER_PARAMS:
        if name in params and not scope.allows_container(params[name]):
            raise Forbidden("This key is not allowed this container.")
    for name in EGG_PARAMS:
        if name in params and not scope.allows_egg(params[name]):
            raise Forbidden("This key is not allowed this egg.")

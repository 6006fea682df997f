"""Container image references, as the Docker Engine and OCI registries spell them:
`[host[:port]/]path[:tag][@sha256:<64 hex>]`, e.g. `registry.example:5000/team/app:1.2`.

The grammar is the one of the distribution project's `reference` package, so what
passes here is what an engine can pull; anything else is refused before it reaches
a host."""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_REFERENCE_LENGTH = 512
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST = (
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"|\[[0-9a-fA-F:]+\])(?::[0-9]{1,5})?"
)
_PATH = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_REFERENCE = re.compile(
    rf"(?:(?P<host>{_HOST})/)?(?P<path>{_COMPONENT}(?:/{_COMPONENT})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[a-f0-9]{64}))?"
)


@dataclass(frozen=True)
class ImageReference:
    """A parsed reference. `repository` includes the registry host when given;
    `pull_tag` is what to ask the engine for besides the repository."""

    repository: str
    tag: str | None
    digest: str | None

    @property
    def registry(self) -> str | None:
        first, _, rest = self.repository.partition("/")
        return first if rest and _looks_like_host(first) else None

    @property
    def pull_tag(self) -> str:
        return self.digest or self.tag or "latest"


def _looks_like_host(first: str) -> bool:
    # As the engine decides: a first component is a registry host when it has a dot,
    # a port, or is localhost; otherwise it is a path on the default registry.
    return "." in first or ":" in first or first == "localhost" or first.startswith("[")


def parse_image(text: str) -> ImageReference:
    """The reference `text` names, or ValueError saying why it is not one."""
    if not text or len(text) > MAX_REFERENCE_LENGTH:
        raise ValueError(f"an image reference has 1 to {MAX_REFERENCE_LENGTH} characters")
    match = _REFERENCE.fullmatch(text)
    if match is None:
        raise ValueError(
            f"{text!r} is not an image reference "
            "(expected [registry[:port]/]name[:tag][@sha256:digest], lowercase name)"
        )
    host, path = match["host"], match["path"]
    if host is not None and not _looks_like_host(host):
        # `team/app`: the first component was a path component after all.
        path = f"{host}/{path}"
        host = None
        if not _PATH.fullmatch(path):
            raise ValueError(f"{text!r} is not an image reference (names are lowercase)")
    if host is not None and ":" in host and not host.startswith("["):
        port = int(host.rsplit(":", 1)[1])
        if not 0 < port < 65536:
            raise ValueError(f"{text!r} names registry port {port}, which does not exist")
    repository = f"{host}/{path}" if host else path
    return ImageReference(repository=repository, tag=match["tag"], digest=match["digest"])


def is_image_reference(text: str) -> bool:
    try:
        parse_image(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class RegistryAuth:
    """Credentials for an egg's registry, in the clear: only workers hold them so,
    for the moment they pull; the table holds them encrypted."""

    username: str
    password: str

    def __repr__(self) -> str:  # never in a log or a traceback
        return f"RegistryAuth(username={self.username!r}, password=***)"


@dataclass(frozen=True)
class SealedRegistryAuth:
    """An egg's registry credentials as the table holds them: the password sealed
    (shared.sealing) under CORRAL_SECRET_KEY. No route ever shows the password."""

    username: str
    sealed_password: str

    def to_json(self) -> dict[str, str]:
        return {"username": self.username, "sealed_password": self.sealed_password}

    @classmethod
    def from_json(cls, data: dict[str, str]) -> SealedRegistryAuth:
        return cls(username=data["username"], sealed_password=data["sealed_password"])

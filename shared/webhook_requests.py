"""The body of POST .../webhooks, strict like every other body. Apart from
shared.webhooks so that the table's webhook store (on every app's start-up) does not
load pydantic."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from shared.requests import Strict

Url = Annotated[str, StringConstraints(min_length=8, max_length=2048)]
EventType = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z_.*]+$")]


class WebhookCreate(Strict):
    url: Url
    types: Annotated[list[EventType], Field(max_length=20)] = []

"""handlers.routing: a `Later` route is built on the first request that finds it, once,
with its shared arguments built once (tests/functional/test_openapi.py checks the
app's own table)."""

from __future__ import annotations

import falcon
import falcon.testing

from handlers import routing
from handlers.routing import Later, LazyRouter

BUILT: list[str] = []


class Counter:
    def __init__(self) -> None:
        BUILT.append("counter")
        self.count = 0


class Hits:
    auth = "public"

    def __init__(self, counter: Counter, name: str) -> None:
        BUILT.append(name)
        self._counter = counter
        self._name = name

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._counter.count += 1
        resp.media = {"name": self._name, "count": self._counter.count}


def test_a_route_is_built_on_its_first_request_and_shares_what_it_is_given() -> None:
    BUILT.clear()
    app = falcon.App(router=LazyRouter())
    counter = Later(f"{__name__}:Counter")
    app.add_route("/a", Later(f"{__name__}:Hits", counter, "a"))
    app.add_route("/b", Later(f"{__name__}:Hits", counter, name="b"))
    client = falcon.testing.TestClient(app)
    assert BUILT == []

    assert client.simulate_get("/a").json == {"name": "a", "count": 1}
    assert BUILT == ["counter", "a"]
    assert client.simulate_get("/a").json == {"name": "a", "count": 2}
    assert client.simulate_get("/b").json == {"name": "b", "count": 3}
    assert BUILT == ["counter", "a", "b"]  # each built once, the counter shared


def test_a_built_route_answers_405_and_options_as_a_plain_route_does() -> None:
    app = falcon.App(router=LazyRouter())
    app.add_route("/lazy", Later(f"{__name__}:Hits", Later(f"{__name__}:Counter"), "a"))
    app.add_route("/plain", Hits(Counter(), "plain"))
    client = falcon.testing.TestClient(app)

    for method in ("POST", "DELETE", "OPTIONS"):
        lazy, plain = (
            client.simulate_request(method, "/lazy"),
            client.simulate_request(method, "/plain"),
        )
        assert (lazy.status_code, lazy.headers.get("allow")) == (
            plain.status_code,
            plain.headers.get("allow"),
        )
    assert client.simulate_post("/lazy").status_code == 405


def test_routes_walks_the_built_resources() -> None:
    app = falcon.App(router=LazyRouter())
    app.add_route("/a", Later(f"{__name__}:Hits", Later(f"{__name__}:Counter"), "a"))
    app.add_route("/plain", Hits(Counter(), "plain"))

    found = {template: type(resource) for template, resource in routing.routes(app)}

    assert found == {"/a": Hits, "/plain": Hits}

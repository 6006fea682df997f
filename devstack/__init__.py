"""The local components Corral runs against for `make run`, the tests and the
benchmarks: a private dockerd, the table server, Redis, the local busybox image,
and Corral's own processes (gunicorn, rq workers). Each is started one way, here.

Never imported by production code (handlers, services, infra, shared, workers),
never in the Lambda artifact. `python -m devstack` is `make run`.
"""

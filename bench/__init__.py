"""Corral's benchmark suite: `make bench` (or `python -m bench [--quick]`).

Every figure is measured next to a baseline taken in the same run, on the same
machine, against real local components the suite starts itself (redis-server,
DynamoDB Local holding the table, a private dockerd, gunicorn, rq workers). Ratios
are what to read: absolute numbers move with the machine and its load.
"""

"""The use cases: validate, decide, write intent with conditions, enqueue the job.

Used by the HTTP resources in `handlers/` and by the jobs in `workers/`; built on the
table and queue adapters in `infra/` and the rules in `shared/`.
"""

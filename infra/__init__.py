"""Adapters to the outside world: the table, the queue, host drivers."""

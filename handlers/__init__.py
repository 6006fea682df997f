"""Stateless Falcon handlers. They never import host drivers or worker code."""

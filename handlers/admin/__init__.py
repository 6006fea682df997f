"""The operator API under /api/v1, authenticated by operator keys only."""

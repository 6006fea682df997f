"""The tenant API under /api/public/clusters/v1, scoped to the key's cluster."""

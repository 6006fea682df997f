"""SSH to a host with a pinned host key: the connection and the key helpers."""

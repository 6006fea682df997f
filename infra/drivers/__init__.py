"""Host drivers behind one small protocol, chosen by the host's `driver` field."""

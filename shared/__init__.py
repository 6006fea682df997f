"""Corral's domain layer: models, errors, settings and rules. No I/O, no project imports."""

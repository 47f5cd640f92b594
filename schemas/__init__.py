"""Marshmallow schemas, one module per resource. Server-set fields are dump-only."""

"""Open311 GeoReport v2 (docs/OPEN311.md): the wire format at one boundary."""

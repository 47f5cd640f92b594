"""Pure geometry maths for the grid-management service.

Coordinate-system conversion (``crs``), the single GeoJSON/shapely/database
conversion boundary (``geometry``) and unit-grid generation (``grids``).
Every function states the SRID it works in (storage is always EPSG:4326,
lon/lat); nothing in this package touches the database.
"""

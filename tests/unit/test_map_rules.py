"""What a map draws at each zoom, and the basemap setting (server/domain/maps.py)."""
from __future__ import annotations

import pytest

from server import create_app
from server.domain.maps import Basemap, basemap, region_level


def test_the_region_level_of_each_zoom():
    assert [region_level(z) for z in (0, 9, 10, 11, 12, 13, 14, 22)] == [
        "district", "district", "street", "street", "community", "community", "grid", "grid"]


def test_a_basemap_is_an_http_tile_template_in_a_known_crs():
    assert basemap("") is None and basemap(None) is None
    url = "https://tiles.example.org/{z}/{x}/{y}.png"
    assert basemap(url, "gcj02", "© 地图") == Basemap(url, "gcj02", "© 地图")
    for bad_url in ("ftp://tiles.example.org/{z}/{x}/{y}.png", "https://tiles.example.org/{z}/{x}.png",
                    "javascript:alert(1)//{z}{x}{y}"):
        with pytest.raises(ValueError, match="tile template"):
            basemap(bad_url)
    with pytest.raises(ValueError, match="CRS"):
        basemap(url, "bd09")


def test_a_bad_basemap_setting_stops_the_app_from_starting():
    with pytest.raises(ValueError, match="basemap"):
        create_app({"MAP_BASEMAP_URL": "https://tiles.example.org/{z}/{x}/{y}.png", "MAP_BASEMAP_CRS": "mars"})

"""Small real images for tests, made with Pillow (optionally with EXIF time and GPS)."""
from __future__ import annotations

import io
from fractions import Fraction

from PIL import ExifTags, Image


def _dms(value: float) -> tuple[Fraction, Fraction, Fraction]:
    value = abs(value)
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = Fraction(round((value - degrees - minutes / 60) * 3600 * 10000), 10000)
    return Fraction(degrees), Fraction(minutes), seconds


def jpeg(*, lon: float | None = None, lat: float | None = None, taken: str | None = None,
         colour=(200, 80, 40), size=(64, 48)) -> bytes:
    """A JPEG; ``taken`` like "2026:11:23 10:20:30+08:00" sets DateTimeOriginal and its offset."""
    exif = Image.Exif()
    if taken:
        stamp, offset = taken[:19], taken[19:] or None
        sub = exif.get_ifd(ExifTags.IFD.Exif)
        sub[ExifTags.Base.DateTimeOriginal] = stamp
        if offset:
            sub[ExifTags.Base.OffsetTimeOriginal] = offset
    if lon is not None:
        gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
        gps[ExifTags.GPS.GPSLatitudeRef] = "N" if lat >= 0 else "S"
        gps[ExifTags.GPS.GPSLatitude] = _dms(lat)
        gps[ExifTags.GPS.GPSLongitudeRef] = "E" if lon >= 0 else "W"
        gps[ExifTags.GPS.GPSLongitude] = _dms(lon)
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "JPEG", exif=exif.tobytes())
    return out.getvalue()


def exif_gps(data: bytes) -> dict:
    """The GPS IFD of an image's EXIF (empty when there is none)."""
    with Image.open(io.BytesIO(data)) as img:
        return dict(img.getexif().get_ifd(ExifTags.IFD.GPSInfo))

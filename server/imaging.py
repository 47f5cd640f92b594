"""Incident photos: what a file is, what it claims about itself, and a copy safe to show.

Pure functions on bytes (no Flask, no database). A photo is accepted only when its magic
bytes say JPEG, PNG, WebP or HEIC and it decodes completely; file names and client
content types are never consulted.

The metadata read here (EXIF time taken and GPS position) is whatever the phone, or
anyone editing the file, wrote: it is shown to supervisors as a hint ("taken 2 km from
the reported spot"), never trusted as proof. Positions are decimal degrees on WGS84
(EXIF GPS coordinates are WGS84 by the EXIF specification); times are timezone-aware.

Originals keep their metadata for the record; ``public_variant`` makes the re-encoded
JPEG, stripped of all metadata, served to actors who may not see originals.
"""
from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pillow_heif
from PIL import ExifTags, Image, ImageCms, ImageOps

pillow_heif.register_heif_opener()

JPEG, PNG, WEBP, HEIC = "image/jpeg", "image/png", "image/webp", "image/heic"

# The Pillow plugins allowed to open each sniffed type (MPO: multi-picture JPEGs from phones).
_PILLOW_FORMATS = {JPEG: ["JPEG", "MPO"], PNG: ["PNG"], WEBP: ["WEBP"], HEIC: ["HEIF"]}

_HEVC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"}
_HEIF_GENERIC_BRANDS = {b"mif1", b"msf1"}
_AVIF_BRANDS = {b"avif", b"avis"}

_EXIF_DATETIME = re.compile(r"(\d{4}):(\d{2}):(\d{2}) (\d{2}):(\d{2}):(\d{2})")
_EXIF_OFFSET = re.compile(r"([+-])(\d{2}):(\d{2})")

_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


class ImageError(Exception):
    """A refused photo: a stable ``code``, a ``message`` for people, the HTTP ``status``."""

    def __init__(self, code: str, message: str, status: int):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True)
class ImageInfo:
    """What a photo is and claims: pixel size as stored (before EXIF orientation), EXIF time
    taken (timezone-aware) and position (WGS84 degrees); None where absent or malformed."""

    content_type: str
    width: int
    height: int
    taken_at: datetime | None
    lon: float | None
    lat: float | None


def sniff(data: bytes) -> str | None:
    """The content type from the magic bytes (JPEG, PNG, WebP or HEIC), else None."""
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return WEBP
    if _is_heic(data):
        return HEIC
    return None


def _is_heic(data: bytes) -> bool:
    # ISO BMFF starts with an 'ftyp' box: size, 'ftyp', major brand, minor version,
    # then compatible brands. AVIF shares the generic HEIF brands, so they count only
    # without an AVIF brand.
    if len(data) < 16 or data[4:8] != b"ftyp":
        return False
    size = min(int.from_bytes(data[:4], "big"), len(data))
    if size < 16:
        return False
    brands = {data[8:12]} | {data[i:i + 4] for i in range(16, size - 3, 4)}
    if brands & _HEVC_BRANDS:
        return True
    return bool(brands & _HEIF_GENERIC_BRANDS) and not brands & _AVIF_BRANDS


def inspect(data: bytes, *, max_pixels: int, local_tz: ZoneInfo) -> ImageInfo:
    """Check that ``data`` is a whole photo of an accepted type and read its EXIF claims.

    EXIF times without an offset are read in ``local_tz``. Malformed or out-of-range
    metadata gives None, never an error.

    Raises ImageError: ``photo.unsupported_type`` (415), ``photo.corrupt`` (422), or
    ``photo.too_many_pixels`` (422, checked from the header before decoding).
    """
    content_type, img = _open(data)
    with img:
        width, height = img.size
        if width * height > max_pixels:
            raise _too_many_pixels(width * height)
        _decode(img)
        exif = _exif(img)
        taken_at = _taken_at(exif, local_tz)
        lon, lat = _position(exif)
    return ImageInfo(content_type, width, height, taken_at, lon, lat)


def public_variant(data: bytes, *, max_side: int = 2560) -> bytes:
    """A JPEG (quality 85) of the photo, upright, sRGB, longer side ≤ ``max_side``, no metadata.

    No EXIF, GPS, XMP, ICC profile or comment survives: this is what actors who may not
    see originals are served. Run ``inspect`` first; it enforces the pixel limit.
    Raises ImageError like ``inspect``.
    """
    _, img = _open(data)
    with img:
        if img.format in ("JPEG", "MPO"):
            # DCT scaling of the same pixels. Not for HEIC, whose draft() would decode an
            # embedded thumbnail: a separate picture that need not match the photo.
            img.draft(None, (max_side, max_side))
        _decode(img)
        try:
            upright = ImageOps.exif_transpose(img)
        except Exception:  # malformed EXIF: keep the stored orientation
            upright = img.copy()
    rgb = _to_srgb(upright)
    rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    rgb.info = {}  # Pillow carries comments and the like from info into the JPEG
    out = io.BytesIO()
    rgb.save(out, format="JPEG", quality=85)
    return out.getvalue()


# Pillow's parsers raise many exception types on hostile input (OSError, SyntaxError,
# ValueError, struct.error, TypeError, EOFError…), hence the broad excepts below.
def _open(data: bytes) -> tuple[str, Image.Image]:
    content_type = sniff(data)
    if content_type is None:
        raise ImageError("photo.unsupported_type", "Photos must be JPEG, PNG, WebP or HEIC.", 415)
    try:
        img = Image.open(io.BytesIO(data), formats=_PILLOW_FORMATS[content_type])
    except Image.DecompressionBombError:
        raise _too_many_pixels(None) from None
    except Exception:
        raise _corrupt() from None
    return content_type, img


def _decode(img: Image.Image) -> None:
    try:
        img.load()
    except Image.DecompressionBombError:
        raise _too_many_pixels(None) from None
    except Exception:
        raise _corrupt() from None


def _corrupt() -> ImageError:
    return ImageError("photo.corrupt", "The photo is damaged or incomplete and cannot be read.", 422)


def _too_many_pixels(pixels: int | None) -> ImageError:
    size = f" ({pixels} pixels)" if pixels is not None else ""
    return ImageError("photo.too_many_pixels", f"The photo is too large{size}.", 422)


def _to_srgb(img: Image.Image) -> Image.Image:
    """An RGB copy in sRGB; transparency is flattened onto white."""
    icc = img.info.get("icc_profile")
    if icc and img.mode in ("RGB", "CMYK", "L"):
        try:
            return ImageCms.profileToProfile(img, ImageCms.ImageCmsProfile(io.BytesIO(icc)), _SRGB, outputMode="RGB")
        except Exception:  # a malformed or mismatched profile: convert as if untagged
            pass
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        flat = Image.new("RGB", rgba.size, "white")
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return img.convert("RGB")


def _exif(img: Image.Image) -> Image.Exif | None:
    try:
        return img.getexif()
    except Exception:
        return None


def _taken_at(exif: Image.Exif | None, local_tz: ZoneInfo) -> datetime | None:
    """DateTimeOriginal with OffsetTimeOriginal, else DateTime with OffsetTime; else None."""
    if exif is None:
        return None
    try:
        sub = exif.get_ifd(ExifTags.IFD.Exif)
        candidates = (
            (sub.get(ExifTags.Base.DateTimeOriginal), sub.get(ExifTags.Base.OffsetTimeOriginal)),
            (exif.get(ExifTags.Base.DateTime), sub.get(ExifTags.Base.OffsetTime)),
        )
        for stamp, offset in candidates:
            naive = _parse_exif_datetime(stamp)
            if naive is not None:
                return naive.replace(tzinfo=_parse_exif_offset(offset) or local_tz)
    except Exception:
        pass
    return None


def _exif_text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return value.strip("\x00 ") if isinstance(value, str) else None


def _parse_exif_datetime(value: object) -> datetime | None:
    text = _exif_text(value)
    match = _EXIF_DATETIME.fullmatch(text) if text else None
    if match is None:
        return None
    try:
        return datetime(*map(int, match.groups()))
    except ValueError:  # "0000:00:00 00:00:00" and other impossible dates
        return None


def _parse_exif_offset(value: object) -> timezone | None:
    text = _exif_text(value)
    match = _EXIF_OFFSET.fullmatch(text) if text else None
    if match is None:
        return None
    sign, hours, minutes = match.groups()
    delta = timedelta(hours=int(hours), minutes=int(minutes))
    if delta > timedelta(hours=14) or int(minutes) >= 60:
        return None
    return timezone(-delta if sign == "-" else delta)


def _position(exif: Image.Exif | None) -> tuple[float | None, float | None]:
    """(lon, lat) in WGS84 degrees from the GPS IFD, or (None, None) if absent or malformed."""
    if exif is None:
        return None, None
    try:
        gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
        lat = _gps_degrees(gps.get(ExifTags.GPS.GPSLatitude), gps.get(ExifTags.GPS.GPSLatitudeRef), "N", "S", 90)
        lon = _gps_degrees(gps.get(ExifTags.GPS.GPSLongitude), gps.get(ExifTags.GPS.GPSLongitudeRef), "E", "W", 180)
    except Exception:
        return None, None
    if lat is None or lon is None:
        return None, None
    return lon, lat


def _gps_degrees(dms: object, ref: object, positive: str, negative: str, limit: float) -> float | None:
    """Degrees, minutes, seconds (three rationals) and a hemisphere letter → signed degrees."""
    hemisphere = _exif_text(ref)
    if hemisphere not in (positive, negative) or not isinstance(dms, tuple) or len(dms) != 3:
        return None
    degrees, minutes, seconds = (float(part) for part in dms)
    if not all(math.isfinite(part) and part >= 0 for part in (degrees, minutes, seconds)):
        return None
    if minutes >= 60 or seconds >= 60:
        return None
    value = degrees + minutes / 60 + seconds / 3600
    if value > limit:
        return None
    return -value if hemisphere == negative else value

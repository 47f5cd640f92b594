"""Photo sniffing, inspection and the public variant, on images built in memory with Pillow."""
from __future__ import annotations

import io
import struct
import zlib
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pillow_heif
import pytest
from PIL import ExifTags, Image, ImageCms
from PIL.TiffImagePlugin import IFDRational

from server.imaging import ImageError, ImageInfo, inspect, public_variant, sniff

SHANGHAI = ZoneInfo("Asia/Shanghai")
MAX_PIXELS = 50_000_000

# 39°54'26.4"N 116°23'29.28"E (Tiananmen) and 33°51'35.37"S 151°12'30.12"W as rationals.
BEIJING = ((IFDRational(39), IFDRational(54), IFDRational(264, 10)), "N",
           (IFDRational(116), IFDRational(23), IFDRational(2928, 100)), "E")
SOUTH_WEST = ((IFDRational(33), IFDRational(51), IFDRational(3537, 100)), "S",
              (IFDRational(151), IFDRational(12), IFDRational(3012, 100)), "W")


def make_exif(*, taken="2024:05:01 10:20:30", offset=None, datetime_only=None, gps=None, orientation=None):
    exif = Image.Exif()
    if orientation is not None:
        exif[ExifTags.Base.Orientation] = orientation
    if datetime_only is not None:
        exif[ExifTags.Base.DateTime] = datetime_only
    sub = exif.get_ifd(ExifTags.IFD.Exif)
    if taken is not None:
        sub[ExifTags.Base.DateTimeOriginal] = taken
    if offset is not None:
        sub[ExifTags.Base.OffsetTimeOriginal] = offset
    if gps is not None:
        lat, lat_ref, lon, lon_ref = gps
        ifd = exif.get_ifd(ExifTags.IFD.GPSInfo)
        ifd[ExifTags.GPS.GPSLatitudeRef] = lat_ref
        ifd[ExifTags.GPS.GPSLatitude] = lat
        ifd[ExifTags.GPS.GPSLongitudeRef] = lon_ref
        ifd[ExifTags.GPS.GPSLongitude] = lon
    return exif


def encode(fmt: str, size=(64, 48), *, mode="RGB", exif=None, **params) -> bytes:
    img = Image.new(mode, size, "red" if mode == "RGB" else None)
    if exif is not None:
        params["exif"] = exif
    buf = io.BytesIO()
    img.save(buf, format=fmt, **params)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares the size but whose pixel data is a few bytes."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def check(data: bytes, **kwargs) -> ImageInfo:
    return inspect(data, max_pixels=kwargs.pop("max_pixels", MAX_PIXELS), local_tz=SHANGHAI, **kwargs)


def refusal(data: bytes, **kwargs) -> ImageError:
    with pytest.raises(ImageError) as caught:
        check(data, **kwargs)
    return caught.value


# --- inspect: metadata -------------------------------------------------------------


def test_reads_gps_position_in_decimal_degrees():
    info = check(encode("JPEG", exif=make_exif(gps=BEIJING)))
    assert info.lat == pytest.approx(39 + 54 / 60 + 26.4 / 3600, abs=1e-6)
    assert info.lon == pytest.approx(116 + 23 / 60 + 29.28 / 3600, abs=1e-6)


def test_south_and_west_hemispheres_are_negative():
    info = check(encode("JPEG", exif=make_exif(gps=SOUTH_WEST)))
    assert info.lat == pytest.approx(-33.859825, abs=1e-6)
    assert info.lon == pytest.approx(-151.2083667, abs=1e-6)


def test_time_taken_uses_the_offset_recorded_with_it():
    info = check(encode("JPEG", exif=make_exif(taken="2024:05:01 10:20:30", offset="-05:00")))
    assert info.taken_at == datetime(2024, 5, 1, 10, 20, 30, tzinfo=timezone(timedelta(hours=-5)))
    assert info.taken_at.utcoffset() == timedelta(hours=-5)


def test_time_taken_without_offset_is_read_in_the_local_zone():
    info = check(encode("JPEG", exif=make_exif(taken="2024:05:01 10:20:30")))
    assert info.taken_at == datetime(2024, 5, 1, 2, 20, 30, tzinfo=timezone.utc)
    assert info.taken_at.tzinfo == SHANGHAI


def test_time_falls_back_to_datetime_when_original_is_missing():
    info = check(encode("JPEG", exif=make_exif(taken=None, datetime_only="2023:12:31 23:59:59")))
    assert info.taken_at == datetime(2023, 12, 31, 23, 59, 59, tzinfo=SHANGHAI)


def test_photo_without_exif_has_no_time_or_position():
    info = check(encode("JPEG"))
    assert (info.taken_at, info.lon, info.lat) == (None, None, None)


def test_latitude_out_of_range_gives_no_position():
    bad = ((IFDRational(123), IFDRational(0), IFDRational(0)), "N", BEIJING[2], "E")
    info = check(encode("JPEG", exif=make_exif(gps=bad)))
    assert (info.lon, info.lat) == (None, None)


@pytest.mark.parametrize("gps", [
    ((IFDRational(39), IFDRational(75), IFDRational(0)), "N", BEIJING[2], "E"),    # 75 minutes
    ((IFDRational(39), IFDRational(1, 0), IFDRational(0)), "N", BEIJING[2], "E"),  # zero denominator
    (BEIJING[0], "X", BEIJING[2], "E"),                                            # no such hemisphere
    (BEIJING[0], "N", (IFDRational(116), IFDRational(23)), "E"),                   # two components
    (BEIJING[0], "N", BEIJING[2] + (IFDRational(1),), "E"),                        # four components
])
def test_malformed_gps_gives_no_position(gps):
    info = check(encode("JPEG", exif=make_exif(gps=gps)))
    assert (info.lon, info.lat) == (None, None)


@pytest.mark.parametrize("taken", ["0000:00:00 00:00:00", "yesterday", "2024:13:01 10:00:00", ""])
def test_malformed_time_taken_is_ignored(taken):
    assert check(encode("JPEG", exif=make_exif(taken=taken))).taken_at is None


def test_malformed_offset_falls_back_to_local_zone():
    info = check(encode("JPEG", exif=make_exif(taken="2024:05:01 10:20:30", offset="+25:99")))
    assert info.taken_at == datetime(2024, 5, 1, 10, 20, 30, tzinfo=SHANGHAI)


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_garbage_exif_segment_is_ignored():
    jpeg = encode("JPEG", exif=b"Exif\x00\x00II*\x00\xff\xff\xff\x7f" + b"\x01" * 40)
    info = check(jpeg)
    assert (info.content_type, info.taken_at, info.lon, info.lat) == ("image/jpeg", None, None, None)


# --- inspect: types and refusals -------------------------------------------------


@pytest.mark.parametrize("fmt, content_type", [
    ("JPEG", "image/jpeg"), ("PNG", "image/png"), ("WEBP", "image/webp"), ("HEIF", "image/heic"),
])
def test_accepts_the_four_photo_types_with_their_size(fmt, content_type):
    data = encode(fmt, size=(64, 48))
    assert sniff(data) == content_type
    info = check(data)
    assert (info.content_type, info.width, info.height) == (content_type, 64, 48)


def test_heic_metadata_is_read():
    heic = pillow_heif.from_pillow(Image.new("RGB", (32, 32), "blue"))
    buf = io.BytesIO()
    heic.save(buf, exif=make_exif(offset="+08:00", gps=BEIJING).tobytes())
    info = check(buf.getvalue())
    assert info.content_type == "image/heic"
    assert info.taken_at == datetime(2024, 5, 1, 2, 20, 30, tzinfo=timezone.utc)
    assert info.lat == pytest.approx(39.9073333, abs=1e-6)


def test_text_named_like_a_jpeg_is_unsupported():
    error = refusal(b"hello")
    assert (error.code, error.status) == ("photo.unsupported_type", 415)


@pytest.mark.parametrize("data", [
    encode("GIF", mode="P"),
    b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n",
    b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf",  # AVIF shares HEIF's mif1 brand
    b"",
])
def test_other_formats_are_unsupported(data):
    assert sniff(data) is None
    assert refusal(data).code == "photo.unsupported_type"


def test_heif_brands_identify_heic():
    ftyp = b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic"
    assert sniff(ftyp) == "image/heic"
    assert sniff(b"\x00\x00\x00\x14ftypmif1\x00\x00\x00\x00miaf") == "image/heic"


def test_truncated_jpeg_is_corrupt():
    jpeg = encode("JPEG", size=(256, 256))
    error = refusal(jpeg[: len(jpeg) // 2])
    assert (error.code, error.status) == ("photo.corrupt", 422)


def test_magic_bytes_alone_are_corrupt():
    assert refusal(b"\xff\xd8\xff\xe0" + b"\x00" * 20).code == "photo.corrupt"
    assert refusal(b"RIFF\x00\x00\x00\x00WEBPVP8 ").code == "photo.corrupt"


def test_declared_size_over_the_limit_is_refused_before_decoding():
    # 9000 x 9000 = 81 Mpx declared; the pixel data would not even decode.
    error = refusal(png_header_only(9000, 9000))
    assert (error.code, error.status) == ("photo.too_many_pixels", 422)


def test_decompression_bomb_header_is_too_many_pixels():
    assert refusal(png_header_only(100_000, 100_000)).code == "photo.too_many_pixels"


def test_real_image_over_a_small_limit_is_too_many_pixels():
    assert refusal(encode("PNG", size=(64, 48)), max_pixels=64 * 48 - 1).code == "photo.too_many_pixels"
    assert check(encode("PNG", size=(64, 48)), max_pixels=64 * 48).width == 64


# --- public_variant ------------------------------------------------------------------


def open_jpeg(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    assert img.format == "JPEG"
    return img


def test_public_variant_has_no_gps():
    original = encode("JPEG", exif=make_exif(offset="+08:00", gps=BEIJING))
    public = open_jpeg(public_variant(original))
    assert len(public.getexif()) == 0
    assert public.getexif().get_ifd(ExifTags.IFD.GPSInfo) == {}
    assert "exif" not in public.info
    info = check(public_variant(original))
    assert (info.taken_at, info.lon, info.lat) == (None, None, None)


@pytest.mark.parametrize("with_icc", [False, True])
def test_public_variant_drops_comments_icc_and_xmp(with_icc):
    extra = {"icc_profile": ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()} if with_icc else {}
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), "green").save(
        buf, format="JPEG", comment=b"secret note", xmp=b"<x:xmpmeta>secret</x:xmpmeta>", **extra)
    assert {"comment", "xmp"} <= set(Image.open(buf).info)
    data = public_variant(buf.getvalue())
    assert not {"comment", "xmp", "icc_profile", "exif"} & set(open_jpeg(data).info)
    assert b"secret" not in data


def test_public_variant_applies_orientation():
    original = encode("JPEG", size=(40, 20), exif=make_exif(orientation=6))
    public = open_jpeg(public_variant(original))
    assert public.size == (20, 40)
    assert ExifTags.Base.Orientation not in public.getexif()


def test_public_variant_caps_the_longer_side():
    public = open_jpeg(public_variant(encode("JPEG", size=(3000, 1000)), max_side=500))
    assert public.size == (500, 167)
    small = open_jpeg(public_variant(encode("PNG", size=(300, 100)), max_side=500))
    assert small.size == (300, 100)


@pytest.mark.parametrize("fmt, mode", [("PNG", "RGBA"), ("PNG", "P"), ("PNG", "L"), ("WEBP", "RGBA"), ("HEIF", "RGB")])
def test_public_variant_is_rgb_jpeg_for_every_accepted_type(fmt, mode):
    public = open_jpeg(public_variant(encode(fmt, size=(50, 30), mode=mode)))
    assert (public.mode, public.size) == ("RGB", (50, 30))


def test_public_variant_flattens_transparency_on_white():
    clear = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    buf = io.BytesIO()
    clear.save(buf, format="PNG")
    r, g, b = open_jpeg(public_variant(buf.getvalue())).getpixel((5, 5))
    assert min(r, g, b) > 245


def test_public_variant_refuses_what_inspect_refuses():
    with pytest.raises(ImageError) as caught:
        public_variant(b"hello")
    assert caught.value.code == "photo.unsupported_type"
    jpeg = encode("JPEG", size=(256, 256))
    with pytest.raises(ImageError) as caught:
        public_variant(jpeg[: len(jpeg) // 2])
    assert caught.value.code == "photo.corrupt"

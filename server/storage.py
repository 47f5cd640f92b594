"""Where photo bytes live: a small blob store interface, on local disk or S3-compatible storage.

Keys are content-addressed (``photo_key``), so a key always names the same bytes and
``put`` may be repeated safely. The database holds keys and metadata, never the bytes.
Large blobs (export files) go in from a file and come out in chunks (``put_file``,
``open_chunks``), never whole in memory.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

PHOTO_VARIANTS = ("orig", "public")

_KEY_CHARS = re.compile(r"[A-Za-z0-9._/-]+")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_S3_MISSING = {"404", "NoSuchKey", "NotFound"}
CHUNK = 1 << 20  # bytes read and sent at a time when streaming a blob


class BlobNotFound(KeyError):
    """No blob is stored under this key."""


@runtime_checkable
class BlobStore(Protocol):
    def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store ``data`` under ``key``, replacing what was there (same key, same content)."""

    def put_file(self, key: str, file: BinaryIO, content_type: str) -> None:
        """Store what is left to read of ``file`` under ``key``, read in chunks."""

    def get(self, key: str) -> bytes:
        """The bytes under ``key``; raises BlobNotFound when there are none."""

    def open_chunks(self, key: str) -> Iterator[bytes]:
        """The bytes under ``key`` in chunks; raises BlobNotFound at once when there are none
        (before the first chunk is asked for)."""

    def exists(self, key: str) -> bool:
        """Whether a blob is stored under ``key``."""

    def delete(self, key: str) -> None:
        """Remove the blob under ``key``; a missing one is not an error."""


def photo_key(sha256_hex: str, variant: str) -> str:
    """The key of a photo variant (``orig`` or ``public``): ``photos/ab/cd/<sha256>.<variant>``."""
    digest = sha256_hex.lower()
    if not _SHA256_HEX.fullmatch(digest):
        raise ValueError(f"not a SHA-256 hex digest: {sha256_hex!r}")
    if variant not in PHOTO_VARIANTS:
        raise ValueError(f"photo variant must be one of {PHOTO_VARIANTS}, not {variant!r}")
    return f"photos/{digest[:2]}/{digest[2:4]}/{digest}.{variant}"


def _check_key(key: str) -> str:
    """Refuse keys that could leave the store's root: odd characters, absolute, '.'/'..' or empty segments."""
    if not _KEY_CHARS.fullmatch(key) or key.startswith("/") or any(
        segment in ("", ".", "..") for segment in key.split("/")
    ):
        raise ValueError(f"invalid blob key: {key!r}")
    return key


class LocalStore:
    """Blobs as files under ``root``: directories 0700, files 0600, each written atomically."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*_check_key(key).split("/"))

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self._write(key, lambda f: f.write(data))

    def put_file(self, key: str, file: BinaryIO, content_type: str) -> None:
        self._write(key, lambda f: shutil.copyfileobj(file, f, CHUNK))

    def _write(self, key: str, write: Callable[[BinaryIO], object]) -> None:
        path = self._path(key)
        self._make_dirs(path.parent)
        # mkstemp creates the file 0600; os.replace makes the new content appear at once.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise BlobNotFound(key) from None

    def open_chunks(self, key: str) -> Iterator[bytes]:
        try:
            f = self._path(key).open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise BlobNotFound(key) from None
        return _chunks(f)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        path = self._path(key)
        if path.is_file():
            path.unlink(missing_ok=True)

    def _make_dirs(self, directory: Path) -> None:
        # Path.mkdir(parents=True) gives the parents default permissions; create each level 0700.
        missing = []
        while not directory.is_dir():
            missing.append(directory)
            directory = directory.parent
        for level in reversed(missing):
            try:
                level.mkdir(mode=0o700)
            except FileExistsError:  # created concurrently
                pass


class S3Store:
    """Blobs as objects in an S3 bucket, or on any S3-compatible server (MinIO, Ceph, OSS…).

    With ``endpoint_url`` requests use path-style addressing and send checksums only where
    the API requires them, which such servers support more widely than AWS's defaults.
    ``prefix`` (e.g. ``fengqiao``) is put before every key, separated by a slash.
    """

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        prefix: str = "",
    ):
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        config = None
        if endpoint_url:
            config = Config(
                s3={"addressing_style": "path"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            )
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint_url or None,
            region_name=region or None,
            aws_access_key_id=access_key_id or None,
            aws_secret_access_key=secret_access_key or None,
            config=config,
        )

    def _key(self, key: str) -> str:
        _check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, ContentType=content_type)

    def put_file(self, key: str, file: BinaryIO, content_type: str) -> None:
        # a multipart upload past boto3's threshold: parts are read and sent one at a time
        self.client.upload_fileobj(file, self.bucket, self._key(key), ExtraArgs={"ContentType": content_type})

    def get(self, key: str) -> bytes:
        with self._body(key) as body:
            return body.read()

    def open_chunks(self, key: str) -> Iterator[bytes]:
        return _chunks(self._body(key))

    def _body(self, key: str):
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except ClientError as exc:
            if _is_missing(exc):
                raise BlobNotFound(key) from None
            raise

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _is_missing(exc):
                return False
            raise
        return True

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))


def _chunks(f) -> Iterator[bytes]:
    """``f`` read ``CHUNK`` bytes at a time, closed at the end (or when the reader stops)."""
    with f:
        while chunk := f.read(CHUNK):
            yield chunk


def _is_missing(exc: ClientError) -> bool:
    return str(exc.response.get("Error", {}).get("Code")) in _S3_MISSING


def store_from_config(config: Mapping) -> BlobStore:
    """The photo store named by ``PHOTO_STORE``: ``local`` (``PHOTO_DIR``) or ``s3`` (``S3_*``)."""
    kind = config.get("PHOTO_STORE")
    if kind == "local":
        return LocalStore(Path(config["PHOTO_DIR"]))
    if kind == "s3":
        if not config.get("S3_BUCKET"):
            raise ValueError("PHOTO_STORE is 's3' but S3_BUCKET is not set")
        return S3Store(
            config["S3_BUCKET"],
            endpoint_url=config.get("S3_ENDPOINT_URL"),
            region=config.get("S3_REGION"),
            access_key_id=config.get("S3_ACCESS_KEY_ID"),
            secret_access_key=config.get("S3_SECRET_ACCESS_KEY"),
            prefix=config.get("S3_PREFIX") or "",
        )
    raise ValueError(f"PHOTO_STORE must be 'local' or 's3', not {kind!r}")

"""Blob stores for photos: LocalStore on a temporary directory, S3Store against moto's S3 server.

No database: these tests use neither the ``app`` nor the ``db`` fixture. The S3 server
runs in a thread on 127.0.0.1 with dummy credentials and is stopped after the module.
"""
from __future__ import annotations

import hashlib
import os
import stat

import boto3
import pytest
from moto.server import ThreadedMotoServer

from server.storage import CHUNK, BlobNotFound, BlobStore, LocalStore, S3Store, photo_key, store_from_config

DIGEST = hashlib.sha256(b"photo").hexdigest()
KEY = photo_key(DIGEST, "orig")
EXPORT_KEY = "exports/0123abcd.csv"
DUMMY_CREDENTIALS = {"access_key_id": "testing", "secret_access_key": "testing", "region": "us-east-1"}


# --- keys ----------------------------------------------------------------------------


def test_photo_key_is_content_addressed():
    assert KEY == f"photos/{DIGEST[:2]}/{DIGEST[2:4]}/{DIGEST}.orig"
    assert photo_key(DIGEST.upper(), "public") == f"photos/{DIGEST[:2]}/{DIGEST[2:4]}/{DIGEST}.public"


@pytest.mark.parametrize("digest, variant", [("abc", "orig"), ("z" * 64, "orig"), (DIGEST, "thumb")])
def test_photo_key_refuses_bad_digest_or_variant(digest, variant):
    with pytest.raises(ValueError):
        photo_key(digest, variant)


# --- LocalStore ----------------------------------------------------------------------


def test_local_store_round_trip(tmp_path):
    store = LocalStore(tmp_path / "photos")
    assert isinstance(store, BlobStore)
    assert not store.exists(KEY)
    store.put(KEY, b"jpeg bytes", "image/jpeg")
    assert store.exists(KEY)
    assert store.get(KEY) == b"jpeg bytes"
    store.put(KEY, b"jpeg bytes", "image/jpeg")  # idempotent
    assert store.get(KEY) == b"jpeg bytes"
    store.delete(KEY)
    assert not store.exists(KEY)
    store.delete(KEY)  # deleting what is missing is fine


def test_local_store_missing_key_raises_blob_not_found(tmp_path):
    store = LocalStore(tmp_path)
    with pytest.raises(BlobNotFound):
        store.get(KEY)
    with pytest.raises(KeyError):  # BlobNotFound is a KeyError
        store.get("photos")


def test_local_store_overwrite_replaces_the_file_atomically(tmp_path):
    store = LocalStore(tmp_path)
    store.put(KEY, b"old content", "image/jpeg")
    path = tmp_path.joinpath(*KEY.split("/"))
    with open(path, "rb") as reader:
        store.put(KEY, b"new content", "image/jpeg")
        assert reader.read() == b"old content"  # a reader of the old file never sees a mix
    assert store.get(KEY) == b"new content"
    assert os.listdir(path.parent) == [path.name]  # no temporary files left


def test_local_store_failed_write_keeps_the_old_content(tmp_path):
    store = LocalStore(tmp_path)
    store.put(KEY, b"old content", "image/jpeg")
    with pytest.raises(TypeError):
        store.put(KEY, None, "image/jpeg")  # the write fails half way
    assert store.get(KEY) == b"old content"
    assert len(os.listdir(tmp_path.joinpath(*KEY.split("/")).parent)) == 1


def test_local_store_files_are_0600_and_directories_0700(tmp_path):
    root = tmp_path / "store"
    LocalStore(root).put(KEY, b"x", "image/jpeg")
    path = root.joinpath(*KEY.split("/"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    directory = path.parent
    while directory != tmp_path:
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
        directory = directory.parent


@pytest.mark.parametrize("key", [
    "../escape", "photos/../../escape", "/etc/passwd", "photos//x", "photos/./x", "photos/",
    "", "photos/a b", "photos\\x", "photos/é", "photos/x\x00",
])
def test_local_store_refuses_bad_keys(tmp_path, key):
    store = LocalStore(tmp_path / "root")
    for call in (lambda: store.put(key, b"x", "image/jpeg"), lambda: store.get(key),
                 lambda: store.exists(key), lambda: store.delete(key)):
        with pytest.raises(ValueError):
            call()
    assert not (tmp_path / "escape").exists()


def streamed_round_trip(store, tmp_path, size: int) -> None:
    """A file put from disk and read back in chunks: the same bytes, in more than one chunk;
    a missing key refused when asked for, before any chunk."""
    data = os.urandom(size)
    source = tmp_path / "export.csv"
    source.write_bytes(data)
    with source.open("rb") as f:
        store.put_file(EXPORT_KEY, f, "text/csv")
    chunks = list(store.open_chunks(EXPORT_KEY))
    assert b"".join(chunks) == data and len(chunks) == -(-size // CHUNK) and max(map(len, chunks)) <= CHUNK
    with pytest.raises(BlobNotFound):
        store.open_chunks("exports/missing.csv")


def test_local_store_streams_files_in_and_out(tmp_path):
    streamed_round_trip(LocalStore(tmp_path / "blobs"), tmp_path, 3 * CHUNK + 17)


# --- S3Store against moto ---------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def bucket(s3_endpoint, request):
    name = "photos-" + hashlib.sha1(request.node.name.encode()).hexdigest()[:12]
    client = boto3.client(
        "s3", endpoint_url=s3_endpoint, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket=name)
    return name


def test_s3_store_round_trip(s3_endpoint, bucket):
    store = S3Store(bucket, endpoint_url=s3_endpoint, **DUMMY_CREDENTIALS)
    assert isinstance(store, BlobStore)
    assert not store.exists(KEY)
    store.put(KEY, b"jpeg bytes", "image/jpeg")
    assert store.exists(KEY)
    assert store.get(KEY) == b"jpeg bytes"
    head = store.client.head_object(Bucket=bucket, Key=KEY)
    assert head["ContentType"] == "image/jpeg"
    store.delete(KEY)
    assert not store.exists(KEY)
    store.delete(KEY)  # deleting what is missing is fine


def test_s3_store_streams_files_in_and_out(s3_endpoint, bucket, tmp_path):
    """Past boto3's multipart threshold (8 MiB): the file goes up in parts."""
    store = S3Store(bucket, endpoint_url=s3_endpoint, **DUMMY_CREDENTIALS)
    streamed_round_trip(store, tmp_path, 9 * CHUNK + 5)
    assert store.client.head_object(Bucket=bucket, Key=EXPORT_KEY)["ContentType"] == "text/csv"


def test_s3_store_missing_key_raises_blob_not_found(s3_endpoint, bucket):
    store = S3Store(bucket, endpoint_url=s3_endpoint, **DUMMY_CREDENTIALS)
    with pytest.raises(BlobNotFound):
        store.get(KEY)


def test_s3_store_puts_keys_under_the_prefix(s3_endpoint, bucket):
    store = S3Store(bucket, endpoint_url=s3_endpoint, prefix="/fengqiao/", **DUMMY_CREDENTIALS)
    store.put(KEY, b"x", "image/png")
    listed = store.client.list_objects_v2(Bucket=bucket)["Contents"]
    assert [item["Key"] for item in listed] == [f"fengqiao/{KEY}"]
    assert store.get(KEY) == b"x"


def test_s3_store_refuses_bad_keys(s3_endpoint, bucket):
    store = S3Store(bucket, endpoint_url=s3_endpoint, **DUMMY_CREDENTIALS)
    with pytest.raises(ValueError):
        store.put("../escape", b"x", "image/jpeg")


# --- store_from_config ---------------------------------------------------------------


def test_config_picks_the_local_store(tmp_path):
    store = store_from_config({"PHOTO_STORE": "local", "PHOTO_DIR": str(tmp_path)})
    assert isinstance(store, LocalStore)
    store.put(KEY, b"x", "image/jpeg")
    assert tmp_path.joinpath(*KEY.split("/")).read_bytes() == b"x"


def test_config_picks_the_s3_store(s3_endpoint, bucket):
    store = store_from_config({
        "PHOTO_STORE": "s3", "S3_BUCKET": bucket, "S3_ENDPOINT_URL": s3_endpoint, "S3_REGION": "us-east-1",
        "S3_ACCESS_KEY_ID": "testing", "S3_SECRET_ACCESS_KEY": "testing", "S3_PREFIX": "",
    })
    assert isinstance(store, S3Store)
    store.put(KEY, b"x", "image/jpeg")
    assert store.get(KEY) == b"x"


@pytest.mark.parametrize("config, message", [
    ({"PHOTO_STORE": "ftp"}, "PHOTO_STORE must be 'local' or 's3'"),
    ({}, "PHOTO_STORE must be 'local' or 's3'"),
    ({"PHOTO_STORE": "s3", "S3_BUCKET": None}, "S3_BUCKET"),
])
def test_config_refuses_an_unknown_or_incomplete_store(config, message):
    with pytest.raises(ValueError, match=message):
        store_from_config(config)

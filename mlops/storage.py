"""S3 object storage: streaming multipart upload with checksums, listing, atomic publish.

Endpoints come from the standard AWS environment (`AWS_ENDPOINT_URL`, credentials, region),
so the same code talks to the local moto server and to S3. Network faults and 5xx answers
raise `Transient` (exit 3, retried); a missing object or bucket raises `BadInput`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from mlops.errors import BadInput, MlopsError, Transient

CHUNK = 8 * 1024 * 1024  # multipart part size; memory stays flat at about one part
SHA_KEY = "sha256"
COMMIT_MARKER = "_COMMITTED"


def sha256_file(path: Path, chunk: int = 1024 * 1024) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class S3Url:
    bucket: str
    key: str

    @classmethod
    def parse(cls, url: str) -> S3Url:
        if not url.startswith("s3://"):
            raise BadInput(f"not an s3:// URL: {url!r}")
        bucket, _, key = url[5:].partition("/")
        if not bucket:
            raise BadInput(f"S3 URL without a bucket: {url!r}")
        return cls(bucket, key)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def join(self, *parts: str) -> S3Url:
        key = "/".join(p.strip("/") for p in (self.key, *parts) if p.strip("/"))
        return S3Url(self.bucket, key)


class ObjectStore(Protocol):
    """What the steps need from an object store."""

    def upload_file(self, path: Path, url: S3Url) -> str: ...
    def download_file(self, url: S3Url, path: Path) -> str: ...
    def put_bytes(self, url: S3Url, data: bytes) -> None: ...
    def get_bytes(self, url: S3Url) -> bytes: ...
    def exists(self, url: S3Url) -> bool: ...
    def list(self, url: S3Url) -> list[str]: ...
    def head_sha256(self, url: S3Url) -> str | None: ...
    def copy(self, source: S3Url, target: S3Url) -> None: ...
    def delete(self, url: S3Url) -> None: ...


@contextmanager
def _s3_errors(what: str) -> Iterator[None]:
    try:
        yield from _s3_errors_raw(what)
    except MlopsError as error:
        cause = error.__cause__
        for note in getattr(cause, "__notes__", []) if cause is not None else []:
            error.add_note(note)  # e.g. that the clean-up after the failure failed too
        raise


def _s3_errors_raw(what: str) -> Iterator[None]:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if status >= 500 or code in ("SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout"):
            raise Transient(f"{what}: S3 answered {status} {code}") from exc
        if code in ("NoSuchKey", "404", "NoSuchBucket", "NotFound"):
            raise BadInput(f"{what}: not found ({code})") from exc
        raise BadInput(f"{what}: S3 refused: {code} {error.get('Message', '')}") from exc
    except BotoCoreError as exc:
        # EndpointConnectionError, ReadTimeoutError, ConnectionClosedError ... all transport faults
        raise Transient(f"{what}: {exc}") from exc


class S3Store:
    """boto3-backed store; uploads stream in parts and carry their sha256 as metadata."""

    def __init__(self, endpoint_url: str | None = None, client: Any = None) -> None:
        if client is None:
            import boto3
            from botocore.config import Config

            client = boto3.client(
                "s3",
                endpoint_url=endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None,
                region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
                config=Config(
                    retries={"max_attempts": 2, "mode": "standard"},
                    connect_timeout=5,
                    read_timeout=60,
                ),
            )
        self.client = client

    def ensure_bucket(self, bucket: str) -> None:
        from botocore.exceptions import ClientError

        with _s3_errors(f"creating bucket {bucket}"):
            try:
                self.client.head_bucket(Bucket=bucket)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
                    raise
                self.client.create_bucket(Bucket=bucket)

    def upload_stream(self, handle: BinaryIO, url: S3Url, metadata: dict[str, str] | None = None) -> int:
        """Multipart upload from a stream, one part in memory at a time; aborted on any failure.

        The error raised is the upload's: an abort that fails too (the network is gone) is noted
        on it, and the parts left behind are for the bucket's AbortIncompleteMultipartUpload
        lifecycle rule (docs/infra.md)."""
        with _s3_errors(f"uploading {url}"):
            upload = self.client.create_multipart_upload(
                Bucket=url.bucket, Key=url.key, Metadata=metadata or {}
            )
            upload_id = upload["UploadId"]
            parts: list[dict[str, Any]] = []
            total = 0
            try:
                while True:
                    block = handle.read(CHUNK)
                    if not block and parts:
                        break
                    number = len(parts) + 1
                    answer = self.client.upload_part(
                        Bucket=url.bucket, Key=url.key, PartNumber=number, UploadId=upload_id, Body=block
                    )
                    parts.append({"ETag": answer["ETag"], "PartNumber": number})
                    total += len(block)
                    if not block:
                        break
                self.client.complete_multipart_upload(
                    Bucket=url.bucket, Key=url.key, UploadId=upload_id, MultipartUpload={"Parts": parts}
                )
            except BaseException as failure:
                self.abort_upload(url, upload_id, failure)
                raise
        return total

    def abort_upload(self, url: S3Url, upload_id: str, failure: BaseException) -> bool:
        """Abort a multipart upload after `failure`; never raises (a failed abort is noted on `failure`)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.abort_multipart_upload(Bucket=url.bucket, Key=url.key, UploadId=upload_id)
            return True
        except (BotoCoreError, ClientError) as exc:
            failure.add_note(
                f"aborting multipart upload {upload_id} of {url} failed too ({exc}); its parts stay "
                "until the bucket's AbortIncompleteMultipartUpload lifecycle rule removes them"
            )
            return False

    def incomplete_uploads(self, url: S3Url) -> list[str]:
        """Keys under `url` with a multipart upload started and neither completed nor aborted."""
        with _s3_errors(f"listing multipart uploads under {url}"):
            answer = self.client.list_multipart_uploads(Bucket=url.bucket, Prefix=url.key)
        return [str(item["Key"]) for item in answer.get("Uploads", [])]

    def upload_file(self, path: Path, url: S3Url) -> str:
        """Upload a file; returns its sha256, which is stored as object metadata."""
        digest = sha256_file(path)
        with path.open("rb") as handle:
            self.upload_stream(handle, url, metadata={SHA_KEY: digest})
        return digest

    def download_file(self, url: S3Url, path: Path) -> str:
        """Download to `path` (streamed); verifies the sha256 in the object metadata if present."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        with _s3_errors(f"downloading {url}"):
            answer = self.client.get_object(Bucket=url.bucket, Key=url.key)
            digest = hashlib.sha256()
            with tmp.open("wb") as handle:
                for block in answer["Body"].iter_chunks(CHUNK):
                    digest.update(block)
                    handle.write(block)
        expected = answer.get("Metadata", {}).get(SHA_KEY)
        if expected and expected != digest.hexdigest():
            tmp.unlink(missing_ok=True)
            raise BadInput(f"checksum mismatch for {url}: expected {expected}, got {digest.hexdigest()}")
        tmp.replace(path)
        return digest.hexdigest()

    def put_bytes(self, url: S3Url, data: bytes) -> None:
        with _s3_errors(f"writing {url}"):
            self.client.put_object(
                Bucket=url.bucket,
                Key=url.key,
                Body=data,
                Metadata={SHA_KEY: hashlib.sha256(data).hexdigest()},
            )

    def get_bytes(self, url: S3Url) -> bytes:
        with _s3_errors(f"reading {url}"):
            return bytes(self.client.get_object(Bucket=url.bucket, Key=url.key)["Body"].read())

    def exists(self, url: S3Url) -> bool:
        from botocore.exceptions import ClientError

        with _s3_errors(f"checking {url}"):
            try:
                self.client.head_object(Bucket=url.bucket, Key=url.key)
                return True
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                    return False
                raise

    def list(self, url: S3Url) -> list[str]:
        """Keys under a prefix (all pages)."""
        keys: list[str] = []
        with _s3_errors(f"listing {url}"):
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=url.bucket, Prefix=url.key):
                keys.extend(item["Key"] for item in page.get("Contents", []))
        return keys

    def publish_directory(self, directory: Path, url: S3Url) -> dict[str, str]:
        """Upload every file of `directory` under `url`, then a commit marker listing their sha256.

        Readers treat a prefix without `_COMMITTED` as not there, so a half-written upload is
        never visible as a complete version.
        """
        manifest: dict[str, str] = {}
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            relative = path.relative_to(directory).as_posix()
            manifest[relative] = self.upload_file(path, url.join(relative))
        self.put_bytes(url.join(COMMIT_MARKER), json.dumps(manifest, indent=2, sort_keys=True).encode())
        return manifest

    def head_sha256(self, url: S3Url) -> str | None:
        """The sha256 stored in an object's metadata (None when it has none)."""
        with _s3_errors(f"reading metadata of {url}"):
            answer = self.client.head_object(Bucket=url.bucket, Key=url.key)
        value = answer.get("Metadata", {}).get(SHA_KEY)
        return str(value) if value else None

    def copy(self, source: S3Url, target: S3Url) -> None:
        """Server-side copy (multipart for large objects) carrying the source's sha256 along."""
        digest = self.head_sha256(source)
        extra: dict[str, Any] = {
            "MetadataDirective": "REPLACE",
            "Metadata": {SHA_KEY: digest} if digest else {},
        }
        with _s3_errors(f"copying {source} to {target}"):
            self.client.copy(
                {"Bucket": source.bucket, "Key": source.key}, target.bucket, target.key, ExtraArgs=extra
            )

    def delete(self, url: S3Url) -> None:
        with _s3_errors(f"deleting {url}"):
            self.client.delete_object(Bucket=url.bucket, Key=url.key)

    def is_committed(self, url: S3Url) -> bool:
        return self.exists(url.join(COMMIT_MARKER))

    def commit_manifest(self, url: S3Url, what: str = "folder") -> dict[str, str]:
        """The manifest `publish_directory` wrote for `url` (relative name -> sha256).

        Raises `BadInput` naming `what` when `url` has no commit marker: it is not there yet.
        """
        if not self.is_committed(url):
            raise BadInput(
                f"{url} is not a committed {what}: it has no {COMMIT_MARKER} "
                "(the step that writes it did not finish)"
            )
        manifest = json.loads(self.get_bytes(url.join(COMMIT_MARKER)))
        if not isinstance(manifest, dict):
            raise BadInput(f"{url}/{COMMIT_MARKER} is not a manifest (a JSON object of sha256s)")
        return {str(name): str(digest) for name, digest in manifest.items()}

    def download_committed(
        self, url: S3Url, destination: Path, names: Iterable[str] | None = None, what: str = "folder"
    ) -> dict[str, str]:
        """The files of the committed folder at `url` (all, or only `names`) into `destination`.

        The reader beside `publish_directory`: every file is checked against the commit manifest,
        so a file changed after publishing is refused (`BadInput`), never used. Returns the manifest.
        """
        manifest = self.commit_manifest(url, what)
        for name in sorted(manifest) if names is None else list(names):
            if name not in manifest:
                raise BadInput(f"{url} has no {name} (not in its {COMMIT_MARKER} manifest)")
            digest = self.download_file(url.join(name), destination / name)
            if digest != manifest[name]:
                (destination / name).unlink(missing_ok=True)
                raise BadInput(
                    f"{url}/{name}: sha256 {digest} differs from the commit manifest's {manifest[name]}"
                )
        return manifest

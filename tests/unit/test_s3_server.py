"""Which bucket a request to the local S3 names (the write-through layer syncs that bucket)."""

from __future__ import annotations

import pytest

from mlops.stack.s3_server import bucket_of


@pytest.mark.parametrize(
    ("host", "path", "bucket"),
    [
        ("127.0.0.1:9000", "/mlops-models/triton/m/1/model.onnx", "mlops-models"),
        ("localhost:9000", "/mlops-models/a/b", "mlops-models"),
        ("mlops-models.localhost:9000", "/mlops-models-not-this/a", "mlops-models"),
        ("[::1]:9000", "/data/x", "data"),
        ("127.0.0.1:9000", "/", None),
    ],
)
def test_bucket_of_path_and_virtual_host_requests(host: str, path: str, bucket: str | None) -> None:
    assert bucket_of({"HTTP_HOST": host, "PATH_INFO": path}) == bucket

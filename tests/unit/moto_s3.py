"""The real S3Store over moto's in-process S3, for unit tests (no server, no network)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from mlops.storage import S3Store


@contextmanager
def moto_store(monkeypatch: pytest.MonkeyPatch, workflow: str = "", *buckets: str) -> Iterator[S3Store]:
    """An S3Store on moto (no server, no network), these buckets made, and, when given,
    MLOPS_WORKFLOW_NAME=`workflow` (the run folder steps write under `<work-prefix>/<workflow>/`)."""
    import boto3
    from moto import mock_aws

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    if workflow:
        monkeypatch.setenv("MLOPS_WORKFLOW_NAME", workflow)
    with mock_aws():
        store = S3Store(client=boto3.client("s3", region_name="us-east-1"))
        for bucket in buckets:
            store.ensure_bucket(bucket)
        yield store

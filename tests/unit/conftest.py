"""Fixtures shared by the unit tests of several parts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The real S3Store over moto's in-process S3 (no server, no network)."""
    import boto3
    from moto import mock_aws

    from mlops.storage import S3Store

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        yield S3Store(client=boto3.client("s3", region_name="us-east-1"))

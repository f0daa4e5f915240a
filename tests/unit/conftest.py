"""Fixtures shared by the unit tests of several parts (how the tier is spread over xdist workers:
tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The real S3Store over moto's in-process S3 (no server, no network)."""
    from tests.unit.moto_s3 import moto_store

    with moto_store(monkeypatch) as store:
        yield store

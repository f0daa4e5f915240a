"""Fixtures shared by the unit tests of several parts, and how the tier is spread over xdist workers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Folders whose session fixtures are expensive (a pre-trained tiny Mistral, an exported ResNet-18):
# under `-n N --dist loadgroup` each folder's tests stay on one worker, so each fixture is made
# once, not once per worker.
_UNIT = Path(__file__).parent
XDIST_GROUPS = {
    _UNIT / "llm": "tiny-mistral",
    _UNIT / "training": "resnet",
}


# Session fixtures outside those folders that cost seconds (the infra checks over the whole
# repository): every test using one runs on one worker.
FIXTURE_GROUPS = {"repository_report": "infra-report"}


# tryfirst: the marks must be on the items before pytest-xdist's own hook reads them
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.path))
        groups = [group for folder, group in XDIST_GROUPS.items() if path.is_relative_to(folder)]
        fixtures = getattr(item, "fixturenames", ())
        groups += [group for fixture, group in FIXTURE_GROUPS.items() if fixture in fixtures]
        if groups:
            item.add_marker(pytest.mark.xdist_group(groups[0]))


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The real S3Store over moto's in-process S3 (no server, no network)."""
    from tests.unit.moto_s3 import moto_store

    with moto_store(monkeypatch) as store:
        yield store

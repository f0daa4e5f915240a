"""mlops.stack.llm_base: the local vLLM base is downloaded once, checked against its commit manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlops.errors import BadInput
from mlops.stack.llm_base import download_base, local_base
from mlops.storage import S3Url

URI = "s3://models/base/tiny/r1"


@pytest.fixture
def published(s3: Any, tmp_path: Path) -> Path:
    source = tmp_path / "source"
    source.mkdir()
    (source / "config.json").write_text('{"model_type": "mistral"}')
    (source / "model.safetensors").write_bytes(b"weights")
    s3.ensure_bucket("models")
    s3.publish_directory(source, S3Url.parse(URI))
    return source


def test_the_base_lands_under_its_s3_location(
    s3: Any, published: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("mlops.stack.llm_base.S3Store", lambda: s3)
    folder = local_base(URI + "/", tmp_path / "cache")
    assert folder == tmp_path / "cache" / "models" / "base" / "tiny" / "r1"
    assert (folder / "model.safetensors").read_bytes() == b"weights"


def test_a_tampered_base_is_refused(s3: Any, published: Path, tmp_path: Path) -> None:
    s3.put_bytes(S3Url.parse(URI).join("model.safetensors"), b"other weights")
    with pytest.raises(BadInput, match="differs from the commit manifest"):
        download_base(URI, tmp_path / "t", store=s3)


def test_an_uncommitted_or_configless_base_is_refused(s3: Any, published: Path, tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="not a committed base model"):
        download_base("s3://models/base/none", tmp_path / "n", store=s3)
    configless = tmp_path / "configless"
    configless.mkdir()
    (configless / "model.safetensors").write_bytes(b"w")
    s3.publish_directory(configless, S3Url.parse("s3://models/base/noconfig"))
    with pytest.raises(BadInput, match=r"has no config\.json"):
        download_base("s3://models/base/noconfig", tmp_path / "c", store=s3)

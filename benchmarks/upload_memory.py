"""Peak memory of publishing a 1 GiB file to S3 with `S3Store.upload_file` (streaming multipart).

The upload runs in a fresh child process so its peak RSS (`ru_maxrss`) is the upload's own:
the baseline (interpreter + boto3 imported) is taken in the same child before the upload.
Flat memory means the peak stays near the baseline plus a few 8 MiB parts, whatever the size.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

from benchmarks.child import child_figures

REPO_ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from mlops.storage import CHUNK, S3Store, S3Url
path, bucket, key = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
store = S3Store()
store.ensure_bucket(bucket)
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
digest = store.upload_file(path, S3Url(bucket, key))
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
store.client.delete_object(Bucket=bucket, Key=key)
print(json.dumps({"baseline_kib": baseline, "peak_kib": peak, "seconds": seconds, "sha256": digest, "chunk": CHUNK}))
"""


def bench_upload_memory(size_mib: int = 1024) -> dict[str, Any]:
    """Upload a `size_mib` file to the local stack's S3 and report peak RSS growth of the uploader."""
    if not os.environ.get("AWS_ENDPOINT_URL"):
        raise RuntimeError('AWS_ENDPOINT_URL is not set: start the stack and eval "$(bin/mlops env)"')
    with tempfile.TemporaryDirectory(prefix="bench-upload-") as tmp:
        path = Path(tmp) / "big.bin"
        block = os.urandom(1024 * 1024)
        with path.open("wb") as handle:
            for _ in range(size_mib):
                handle.write(block)
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        figures = child_figures(
            ["-c", CHILD, str(path), "mlops-bench", f"upload/{uuid.uuid4().hex}.bin"], env
        )
    growth_mib = (figures["peak_kib"] - figures["baseline_kib"]) / 1024
    return {
        "benchmark": "upload_memory",
        "file_mib": size_mib,
        "part_mib": figures["chunk"] // (1024 * 1024),
        "baseline_rss_mib": round(figures["baseline_kib"] / 1024, 1),
        "peak_rss_mib": round(figures["peak_kib"] / 1024, 1),
        "peak_growth_mib": round(growth_mib, 1),
        "seconds": round(figures["seconds"], 1),
        "mib_per_s": round(size_mib / figures["seconds"], 1),
    }

"""ONNX Runtime vs PyTorch latency of ResNet-18 on this CPU, batch 1 and 32, at several image sizes.

The model is exported and timed with the same code the equivalence gate uses
(`training.resnet.onnx_export.export_onnx`, `training.resnet.validate_onnx.measure_latency`),
so the figures are the ones the gate logs, with more iterations. Weights are random: latency
does not depend on their values.
"""

from __future__ import annotations

import platform
import tempfile
import time
from pathlib import Path
from typing import Any


def bench_onnx_latency(
    image_sizes: tuple[int, ...] = (32, 160, 224),
    iterations: int = 30,
    threads: int = 2,
    num_classes: int = 10,
    opset: int = 17,
) -> dict[str, Any]:
    """Export ResNet-18 once per image size and time both runtimes on random inputs."""
    import numpy as np
    import onnxruntime
    import torch
    import torchvision

    from training.resnet.onnx_export import export_onnx, ort_session
    from training.resnet.validate_onnx import compare, measure_latency

    torch.manual_seed(0)
    torch.set_num_threads(threads)
    model = torchvision.models.resnet18(num_classes=num_classes).eval()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-onnx-") as tmp:
        for size in image_sizes:
            path = Path(tmp) / f"resnet18-{size}.onnx"
            started = time.perf_counter()
            exporter = export_onnx(model, size, path, opset)
            export_s = time.perf_counter() - started
            session = ort_session(path, threads, "all")
            inputs = np.random.default_rng(size).standard_normal((32, 3, size, size)).astype(np.float32)
            equivalence = compare(model, session, inputs)
            latency = measure_latency(model, session, inputs, iterations)
            row: dict[str, Any] = {
                "image_size": size,
                "exporter": exporter,
                "export_s": round(export_s, 2),
                "max_abs_diff_vs_fp64": equivalence.max_abs_diff,
                "torch_fp32_max_abs_diff_vs_fp64": equivalence.torch_fp32_max_abs_diff,
            }
            for batch in (1, 32):
                onnx_p50 = latency[f"latency_ms_onnx_b{batch}_p50"]
                torch_p50 = latency[f"latency_ms_torch_b{batch}_p50"]
                row[f"b{batch}"] = {
                    "onnx_p50_ms": round(onnx_p50, 3),
                    "onnx_p95_ms": round(latency[f"latency_ms_onnx_b{batch}_p95"], 3),
                    "torch_p50_ms": round(torch_p50, 3),
                    "torch_p95_ms": round(latency[f"latency_ms_torch_b{batch}_p95"], 3),
                    "speedup_p50": round(torch_p50 / onnx_p50, 2),
                    "onnx_images_per_s": round(batch / (onnx_p50 / 1000.0), 1),
                }
            rows.append(row)
            print(
                f"  {size}px: b1 onnx {row['b1']['onnx_p50_ms']} ms vs torch {row['b1']['torch_p50_ms']} ms, "
                f"b32 onnx {row['b32']['onnx_p50_ms']} ms vs torch {row['b32']['torch_p50_ms']} ms",
                flush=True,
            )
    return {
        "benchmark": "onnx_latency",
        "model": f"torchvision resnet18, {num_classes} classes, opset {opset}",
        "threads": threads,
        "iterations": iterations,
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "results": rows,
    }

"""A tiny ONNX classifier and its config.pbtxt, built with onnx.helper (no exporter, no torch)."""

from __future__ import annotations

from pathlib import Path

CONFIG = """
name: "tiny"
max_batch_size: 8
input { name: "input" data_type: TYPE_FP32 dims: [3, 4, 4] }
output { name: "logits" data_type: TYPE_FP32 dims: [2] }
"""


def tiny_model(path: Path, op: str = "MatMul", domain: str = "") -> Path:
    """input [N,3,4,4] -> Flatten -> <op> with a fixed [48,2] weight -> logits [N,2]."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    # distinct columns, so the two logits differ and golden labels are unambiguous
    weight = numpy_helper.from_array(np.linspace(-1, 1, 96, dtype=np.float32).reshape(48, 2), "weight")
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["input"], ["flat"], axis=1),
            helper.make_node(op, ["flat", "weight"], ["logits"], domain=domain),
        ],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 4, 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2])],
        [weight],
    )
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    model = helper.make_model(graph, opset_imports=opsets, ir_version=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path

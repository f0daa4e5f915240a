"""Triton python model `postprocessing`: generated token ids -> text.

Inputs TOKENS_BATCH [B, beams, T] and SEQUENCE_LENGTH [B, beams] from the tensorrt_llm model
(with `exclude_input_in_output` the ids are the answer only); output OUTPUT [B, beams] (bytes),
each beam decoded up to its length. The tokenizer is found as in `preprocessing`.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np


def tokenizer_path(args: dict[str, Any], config: dict[str, Any]) -> str:
    """The tokenizer folder: absolute as configured, else relative to `<model_repository>/<version>`."""
    configured = config.get("parameters", {}).get("tokenizer_dir", {}).get("string_value", "tokenizer")
    if os.path.isabs(configured):
        return str(configured)
    return os.path.join(args["model_repository"], str(args["model_version"]), configured)


def decode_batch(
    tokenizer: Any, tokens: np.ndarray, lengths: np.ndarray, skip_special_tokens: bool = True
) -> np.ndarray:
    """[B, beams] array of utf-8 answers from ids [B, beams, T] and lengths [B, beams]."""
    if tokens.ndim != 3 or lengths.shape != tokens.shape[:2]:
        raise ValueError(f"TOKENS_BATCH {tokens.shape} and SEQUENCE_LENGTH {lengths.shape} do not match")
    texts = np.empty(tokens.shape[:2], dtype=np.object_)
    for b in range(tokens.shape[0]):
        for beam in range(tokens.shape[1]):
            ids = tokens[b, beam, : int(lengths[b, beam])].tolist()
            text = tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)
            texts[b, beam] = text.encode("utf-8")
    return texts


class TritonPythonModel:
    """Triton's python backend entry point."""

    def initialize(self, args: dict[str, Any]) -> None:
        from transformers import AutoTokenizer

        config = json.loads(args["model_config"])
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_path(args, config))
        flag = config.get("parameters", {}).get("skip_special_tokens", {}).get("string_value", "true")
        self.skip_special_tokens = flag.lower() == "true"

    def execute(self, requests: list[Any]) -> list[Any]:
        import triton_python_backend_utils as pb_utils

        responses = []
        for request in requests:
            try:
                tokens = pb_utils.get_input_tensor_by_name(request, "TOKENS_BATCH").as_numpy()
                lengths = pb_utils.get_input_tensor_by_name(request, "SEQUENCE_LENGTH").as_numpy()
                texts = decode_batch(self.tokenizer, tokens, lengths, self.skip_special_tokens)
                responses.append(
                    pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("OUTPUT", texts)])
                )
            except Exception as exc:  # one bad request answers with its error; the others go on
                responses.append(
                    pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(str(exc)))
                )
        return responses

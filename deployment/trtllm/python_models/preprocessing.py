"""Triton python model `preprocessing`: prompts -> token ids for the tensorrt_llm model.

Inputs QUERY [B, 1] (bytes) and REQUEST_OUTPUT_LEN [B, 1]; outputs INPUT_ID [B, L] (right-padded
with the pad id), REQUEST_INPUT_LEN [B, 1], REQUEST_OUTPUT_LEN [B, 1], OUT_END_ID / OUT_PAD_ID
[B, 1] from the tokenizer. The tokenizer is the folder `tokenizer_dir` (a config parameter)
relative to this version's folder, so it does not matter where Triton copied the repository.
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


def special_ids(tokenizer: Any) -> tuple[int, int]:
    """(end id, pad id): EOS ends an answer; a tokenizer without a pad token pads with EOS."""
    end_id = tokenizer.eos_token_id
    if end_id is None:
        raise ValueError("the tokenizer has no EOS token: answers could not end")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else end_id
    return int(end_id), int(pad_id)


def encode_batch(
    tokenizer: Any, queries: np.ndarray, add_special_tokens: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """(ids [B, L] padded with the pad id, lengths [B, 1]) of a [B, 1] batch of prompts."""
    _, pad_id = special_ids(tokenizer)
    texts = [q.decode("utf-8") if isinstance(q, bytes) else str(q) for q in queries.reshape(-1)]
    encoded = [tokenizer.encode(text, add_special_tokens=add_special_tokens) for text in texts]
    if any(len(ids) == 0 for ids in encoded):
        raise ValueError("an empty prompt encodes to no tokens")
    width = max(len(ids) for ids in encoded)
    ids = np.full((len(encoded), width), pad_id, dtype=np.int32)
    for row, tokens in enumerate(encoded):
        ids[row, : len(tokens)] = tokens
    lengths = np.array([[len(tokens)] for tokens in encoded], dtype=np.int32)
    return ids, lengths


class TritonPythonModel:
    """Triton's python backend entry point."""

    def initialize(self, args: dict[str, Any]) -> None:
        from transformers import AutoTokenizer

        config = json.loads(args["model_config"])
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_path(args, config))
        flag = config.get("parameters", {}).get("add_special_tokens", {}).get("string_value", "true")
        self.add_special_tokens = flag.lower() == "true"
        self.end_id, self.pad_id = special_ids(self.tokenizer)

    def execute(self, requests: list[Any]) -> list[Any]:
        import triton_python_backend_utils as pb_utils

        responses = []
        for request in requests:
            try:
                queries = pb_utils.get_input_tensor_by_name(request, "QUERY").as_numpy()
                output_len = pb_utils.get_input_tensor_by_name(request, "REQUEST_OUTPUT_LEN").as_numpy()
                ids, lengths = encode_batch(self.tokenizer, queries, self.add_special_tokens)
                batch = ids.shape[0]
                tensors = [
                    pb_utils.Tensor("INPUT_ID", ids),
                    pb_utils.Tensor("REQUEST_INPUT_LEN", lengths),
                    pb_utils.Tensor("REQUEST_OUTPUT_LEN", output_len.astype(np.int32).reshape(batch, 1)),
                    pb_utils.Tensor("OUT_END_ID", np.full((batch, 1), self.end_id, dtype=np.int32)),
                    pb_utils.Tensor("OUT_PAD_ID", np.full((batch, 1), self.pad_id, dtype=np.int32)),
                ]
                responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            except Exception as exc:  # one bad request answers with its error; the others go on
                responses.append(
                    pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(str(exc)))
                )
        return responses

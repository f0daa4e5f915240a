"""The Triton TensorRT-LLM ensemble: four models and their config.pbtxt, built as Triton's ModelConfig.

    ensemble        text_input (string), max_tokens (int32) -> text_output (string)
      preprocessing   python backend: tokenizes (QUERY -> INPUT_ID, lengths, END_ID/PAD_ID)
      tensorrt_llm    tensorrtllm backend: the engine, in-flight batching, paged KV cache
      postprocessing  python backend: detokenizes (TOKENS_BATCH, SEQUENCE_LENGTH -> OUTPUT)

Tensor names and parameters follow NVIDIA's `inflight_batcher_llm` model repository
(tensorrtllm_backend). Configs are built as `model_config_pb2.ModelConfig` messages and
written with protobuf's text format, so every config.pbtxt parses as Triton's own schema.
The python models are this package's `python_models/*.py`, copied as `<model>/<N>/model.py`;
the tokenizer travels with each of them (`<model>/<N>/tokenizer/`), found relative to the
model's folder wherever Triton puts it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops.errors import BadInput

PREPROCESSING = "preprocessing"
TENSORRT_LLM = "tensorrt_llm"
POSTPROCESSING = "postprocessing"
ENSEMBLE = "ensemble"
MODELS = (PREPROCESSING, TENSORRT_LLM, POSTPROCESSING, ENSEMBLE)  # load order: the ensemble last
PYTHON_MODELS = {PREPROCESSING: "preprocessing.py", POSTPROCESSING: "postprocessing.py"}
TOKENIZER_DIR = "tokenizer"


@dataclass(frozen=True)
class EnsembleSettings:
    """What the configs are filled with: the engine's limits and the serving choices."""

    max_batch_size: int  # the engine's build_config.max_batch_size (triton_max_batch_size)
    engine_dir: str  # where the tensorrtllm backend finds the engine on the server (gpt_model_path)
    max_beam_width: int = 1
    decoupled: bool = False  # True streams tokens; the smoke test asks for whole answers
    batching_strategy: str = "inflight_fused_batching"
    kv_cache_free_gpu_mem_fraction: float = 0.9
    max_queue_delay_microseconds: int = 0
    exclude_input_in_output: bool = True
    python_instances: int = 1

    def check(self) -> None:
        problems = []
        if self.max_batch_size < 1 or self.max_beam_width < 1 or self.python_instances < 1:
            problems.append("max_batch_size, max_beam_width and python_instances must be >= 1")
        if not 0.0 < self.kv_cache_free_gpu_mem_fraction <= 1.0:
            problems.append(
                f"kv_cache_free_gpu_mem_fraction {self.kv_cache_free_gpu_mem_fraction} is not in (0, 1]"
            )
        if self.batching_strategy not in ("inflight_fused_batching", "V1"):
            problems.append(
                f"batching_strategy {self.batching_strategy!r} is not inflight_fused_batching or V1"
            )
        if not self.engine_dir:
            problems.append("engine_dir is empty")
        if problems:
            raise BadInput("invalid ensemble settings: " + "; ".join(problems))


def _pb() -> Any:
    from tritonclient.grpc import model_config_pb2

    return model_config_pb2


def _tensor(
    collection: Any, name: str, dtype: str, dims: list[int], *, optional: bool = False, ragged: bool = False
) -> None:
    pb = _pb()
    tensor = collection.add()
    tensor.name = name
    tensor.data_type = pb.DataType.Value(dtype)
    tensor.dims.extend(dims)
    if optional:
        tensor.optional = True
    if ragged:
        tensor.allow_ragged_batch = True


def _scalar_input(config: Any, name: str, dtype: str, *, optional: bool = False) -> None:
    """A per-request scalar the tensorrtllm backend reads without its dim (`reshape: { shape: [] }`)."""
    _tensor(config.input, name, dtype, [1], optional=optional)
    config.input[-1].reshape.SetInParent()


def _parameters(config: Any, values: dict[str, str]) -> None:
    for key, value in values.items():
        config.parameters[key].string_value = value


def _cpu_instances(config: Any, count: int) -> None:
    group = config.instance_group.add()
    group.count = count
    group.kind = _pb().ModelInstanceGroup.Kind.Value("KIND_CPU")


def preprocessing_config(settings: EnsembleSettings) -> Any:
    config = _pb().ModelConfig(name=PREPROCESSING, backend="python", max_batch_size=settings.max_batch_size)
    _tensor(config.input, "QUERY", "TYPE_STRING", [1])
    _tensor(config.input, "REQUEST_OUTPUT_LEN", "TYPE_INT32", [1])
    _tensor(config.output, "INPUT_ID", "TYPE_INT32", [-1])
    _tensor(config.output, "REQUEST_INPUT_LEN", "TYPE_INT32", [1])
    _tensor(config.output, "REQUEST_OUTPUT_LEN", "TYPE_INT32", [1])
    _tensor(config.output, "OUT_END_ID", "TYPE_INT32", [1])
    _tensor(config.output, "OUT_PAD_ID", "TYPE_INT32", [1])
    _parameters(config, {"tokenizer_dir": TOKENIZER_DIR, "add_special_tokens": "true"})
    _cpu_instances(config, settings.python_instances)
    return config


def tensorrt_llm_config(settings: EnsembleSettings) -> Any:
    # The backend schedules on the GPU itself: one KIND_CPU instance is how NVIDIA's repository declares it.
    config = _pb().ModelConfig(
        name=TENSORRT_LLM, backend="tensorrtllm", max_batch_size=settings.max_batch_size
    )
    config.model_transaction_policy.decoupled = settings.decoupled
    config.dynamic_batching.preferred_batch_size.append(settings.max_batch_size)
    config.dynamic_batching.max_queue_delay_microseconds = settings.max_queue_delay_microseconds
    _tensor(config.input, "input_ids", "TYPE_INT32", [-1], ragged=True)
    _scalar_input(config, "input_lengths", "TYPE_INT32")
    _tensor(config.input, "request_output_len", "TYPE_INT32", [1])
    _scalar_input(config, "end_id", "TYPE_INT32", optional=True)
    _scalar_input(config, "pad_id", "TYPE_INT32", optional=True)
    _scalar_input(config, "temperature", "TYPE_FP32", optional=True)
    _scalar_input(config, "random_seed", "TYPE_UINT64", optional=True)
    _tensor(config.input, "streaming", "TYPE_BOOL", [1], optional=True)
    _tensor(config.output, "output_ids", "TYPE_INT32", [-1, -1])
    _tensor(config.output, "sequence_length", "TYPE_INT32", [-1])
    _cpu_instances(config, 1)
    _parameters(
        config,
        {
            "gpt_model_type": settings.batching_strategy,
            "gpt_model_path": settings.engine_dir,
            "max_beam_width": str(settings.max_beam_width),
            "kv_cache_free_gpu_mem_fraction": f"{settings.kv_cache_free_gpu_mem_fraction:g}",
            "exclude_input_in_output": "true" if settings.exclude_input_in_output else "false",
            "batch_scheduler_policy": "guaranteed_no_evict",
            "enable_chunked_context": "false",
        },
    )
    return config


def postprocessing_config(settings: EnsembleSettings) -> Any:
    config = _pb().ModelConfig(name=POSTPROCESSING, backend="python", max_batch_size=settings.max_batch_size)
    _tensor(config.input, "TOKENS_BATCH", "TYPE_INT32", [-1, -1])
    _tensor(config.input, "SEQUENCE_LENGTH", "TYPE_INT32", [-1])
    _tensor(config.output, "OUTPUT", "TYPE_STRING", [-1])
    _parameters(config, {"tokenizer_dir": TOKENIZER_DIR, "skip_special_tokens": "true"})
    _cpu_instances(config, settings.python_instances)
    return config


def _step(config: Any, model: str, inputs: dict[str, str], outputs: dict[str, str]) -> None:
    step = config.ensemble_scheduling.step.add()
    step.model_name = model
    step.model_version = -1  # each model serves exactly one version (the release's): that one
    for key, value in inputs.items():
        step.input_map[key] = value
    for key, value in outputs.items():
        step.output_map[key] = value


def ensemble_config(settings: EnsembleSettings) -> Any:
    config = _pb().ModelConfig(name=ENSEMBLE, platform="ensemble", max_batch_size=settings.max_batch_size)
    _tensor(config.input, "text_input", "TYPE_STRING", [1])
    _tensor(config.input, "max_tokens", "TYPE_INT32", [1])
    _tensor(config.input, "temperature", "TYPE_FP32", [1], optional=True)
    _tensor(config.input, "random_seed", "TYPE_UINT64", [1], optional=True)
    _tensor(config.output, "text_output", "TYPE_STRING", [-1])
    _step(
        config,
        PREPROCESSING,
        {"QUERY": "text_input", "REQUEST_OUTPUT_LEN": "max_tokens"},
        {
            "INPUT_ID": "_INPUT_ID",
            "REQUEST_INPUT_LEN": "_REQUEST_INPUT_LEN",
            "REQUEST_OUTPUT_LEN": "_REQUEST_OUTPUT_LEN",
            "OUT_END_ID": "_END_ID",
            "OUT_PAD_ID": "_PAD_ID",
        },
    )
    _step(
        config,
        TENSORRT_LLM,
        {
            "input_ids": "_INPUT_ID",
            "input_lengths": "_REQUEST_INPUT_LEN",
            "request_output_len": "_REQUEST_OUTPUT_LEN",
            "end_id": "_END_ID",
            "pad_id": "_PAD_ID",
            "temperature": "temperature",
            "random_seed": "random_seed",
        },
        {"output_ids": "_TOKENS_BATCH", "sequence_length": "_SEQUENCE_LENGTH"},
    )
    _step(
        config,
        POSTPROCESSING,
        {"TOKENS_BATCH": "_TOKENS_BATCH", "SEQUENCE_LENGTH": "_SEQUENCE_LENGTH"},
        {"OUTPUT": "text_output"},
    )
    return config


def render_configs(settings: EnsembleSettings) -> dict[str, str]:
    """model name -> config.pbtxt text, for the four models of the ensemble."""
    from google.protobuf import text_format

    settings.check()
    builders = {
        PREPROCESSING: preprocessing_config,
        TENSORRT_LLM: tensorrt_llm_config,
        POSTPROCESSING: postprocessing_config,
        ENSEMBLE: ensemble_config,
    }
    return {name: str(text_format.MessageToString(builders[name](settings))) for name in MODELS}


def parse_config(text: str) -> Any:
    """config.pbtxt text -> Triton's ModelConfig; BadInput when it does not parse."""
    from google.protobuf import text_format

    config = _pb().ModelConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as exc:
        raise BadInput(f"config.pbtxt does not parse as Triton's ModelConfig: {exc}") from exc
    return config


def python_model_source(model: str) -> Path:
    """This package's model.py of a python-backend model of the ensemble."""
    return Path(__file__).parent / "python_models" / PYTHON_MODELS[model]

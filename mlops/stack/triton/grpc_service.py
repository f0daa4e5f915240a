"""Triton's gRPC service (`inference.GRPCInferenceService`), built on tritonclient's own service
definitions, so every message and status a client sees has Triton's schema.

Implemented: health, server/model metadata, model ready, ModelConfig, ModelStatistics,
ModelInfer (typed and raw contents), RepositoryIndex, RepositoryModelLoad (with an optional
`config` parameter), RepositoryModelUnload, trace and log settings (kept and returned), shared
memory status and unregister (no regions). Registering shared memory and ModelStreamInfer answer
UNIMPLEMENTED with a message, as a status (no traceback in the server's log).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from concurrent import futures
from typing import Any, TypeVar

from mlops.stack.triton import tensors
from mlops.stack.triton.core import ModelManager, VersionStats
from mlops.stack.triton.errors import Code, ServingError
from mlops.stack.triton.settings import SHARED_MEMORY_UNSUPPORTED

log = logging.getLogger("triton-standin")
F = TypeVar("F", bound=Callable[..., Any])


def _answers_errors(method: F) -> F:
    """Turn a ServingError into the gRPC status Triton sends; anything else into INTERNAL."""
    import grpc

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: Any) -> Any:
        try:
            return method(self, request, context)
        except ServingError as exc:
            context.abort(getattr(grpc.StatusCode, exc.code.value), exc.message)
        except Exception as exc:
            log.exception("gRPC %s failed", method.__name__)
            context.abort(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")

    return wrapper  # type: ignore[return-value]


def _duration(count: int, ns: int) -> Any:
    from tritonclient.grpc import service_pb2 as pb

    return pb.StatisticDuration(count=count, ns=ns)


def statistics_message(name: str, version: int, stats: VersionStats) -> Any:
    from tritonclient.grpc import service_pb2 as pb

    return pb.ModelStatistics(
        name=name,
        version=str(version),
        last_inference=stats.last_inference_ms,
        inference_count=stats.inference_count,
        execution_count=stats.execution_count,
        inference_stats=pb.InferStatistics(
            success=_duration(stats.success, stats.success_ns),
            fail=_duration(stats.failure, stats.failure_ns),
            queue=_duration(stats.success, 0),
            compute_input=_duration(stats.success, 0),
            compute_infer=_duration(stats.success, stats.compute_infer_ns),
            compute_output=_duration(stats.success, 0),
        ),
    )


def build_server(manager: ModelManager, address: str, server_info: dict[str, Any], workers: int = 8) -> Any:
    """A started-later `grpc.Server` serving Triton's inference service on `address`."""
    import grpc
    from tritonclient.grpc import service_pb2 as pb
    from tritonclient.grpc import service_pb2_grpc

    class TritonService(service_pb2_grpc.GRPCInferenceServiceServicer):  # type: ignore[misc]
        def ServerLive(self, request: Any, context: Any) -> Any:
            return pb.ServerLiveResponse(live=True)

        def ServerReady(self, request: Any, context: Any) -> Any:
            return pb.ServerReadyResponse(ready=True)

        def ModelReady(self, request: Any, context: Any) -> Any:
            return pb.ModelReadyResponse(ready=manager.is_ready(request.name, request.version))

        def ServerMetadata(self, request: Any, context: Any) -> Any:
            return pb.ServerMetadataResponse(**server_info)

        @_answers_errors
        def ModelMetadata(self, request: Any, context: Any) -> Any:
            meta = manager.metadata(request.name, request.version)
            return pb.ModelMetadataResponse(
                name=meta["name"],
                versions=meta["versions"],
                platform=meta["platform"],
                inputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in meta["inputs"]],
                outputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in meta["outputs"]],
            )

        @_answers_errors
        def ModelConfig(self, request: Any, context: Any) -> Any:
            return pb.ModelConfigResponse(config=manager.config(request.name, request.version))

        @_answers_errors
        def ModelStatistics(self, request: Any, context: Any) -> Any:
            rows = manager.statistics(request.name, request.version)
            return pb.ModelStatisticsResponse(model_stats=[statistics_message(*row) for row in rows])

        @_answers_errors
        def ModelInfer(self, request: Any, context: Any) -> Any:
            raw = request.raw_input_contents
            if raw and len(raw) != len(request.inputs):
                raise ServingError(
                    Code.INVALID_ARG,
                    f"expected {len(request.inputs)} raw_input_contents (one per input), got {len(raw)}",
                )
            inputs = {}
            for position, tensor in enumerate(request.inputs):
                if tensor.name in inputs:
                    raise ServingError(Code.INVALID_ARG, f"input '{tensor.name}' is given twice")
                shape = list(tensor.shape)
                inputs[tensor.name] = (
                    tensors.from_raw(tensor.name, tensor.datatype, shape, raw[position])
                    if raw
                    else tensors.from_contents(tensor.name, tensor.datatype, shape, tensor.contents)
                )
            for output in request.outputs:
                if "classification" in output.parameters:
                    raise ServingError(Code.UNSUPPORTED, "the classification extension is not supported")
            requested = [output.name for output in request.outputs]
            model, outputs = manager.infer(request.model_name, request.model_version, inputs, requested)
            response = pb.ModelInferResponse(
                model_name=model.name, model_version=str(model.version), id=request.id
            )
            for name, array in outputs.items():
                response.outputs.add(
                    name=name, datatype=tensors.wire_datatype(array), shape=list(array.shape)
                )
                response.raw_output_contents.append(tensors.to_raw(array))
            return response

        def ModelStreamInfer(self, request_iterator: Any, context: Any) -> Any:
            context.abort(
                grpc.StatusCode.UNIMPLEMENTED,
                "ModelStreamInfer (decoupled models) is not supported by the Triton stand-in",
            )

        @_answers_errors
        def TraceSetting(self, request: Any, context: Any) -> Any:
            update = {
                key: (list(value.value) if value.value else None) for key, value in request.settings.items()
            }
            settings = manager.settings.trace(request.model_name, update or None)
            answer = pb.TraceSettingResponse()
            for key, values in settings.items():
                answer.settings[key].value.extend(values)
            return answer

        @_answers_errors
        def LogSettings(self, request: Any, context: Any) -> Any:
            update = {
                key: getattr(value, value.WhichOneof("parameter_choice"))
                for key, value in request.settings.items()
                if value.WhichOneof("parameter_choice")
            }
            answer = pb.LogSettingsResponse()
            for key, value in manager.settings.log(update or None).items():
                slot = answer.settings[key]
                if isinstance(value, bool):
                    slot.bool_param = value
                elif isinstance(value, int):
                    slot.uint32_param = value
                else:
                    slot.string_param = value
            return answer

        @_answers_errors
        def SystemSharedMemoryStatus(self, request: Any, context: Any) -> Any:
            return pb.SystemSharedMemoryStatusResponse()

        @_answers_errors
        def SystemSharedMemoryRegister(self, request: Any, context: Any) -> Any:
            raise ServingError(Code.UNSUPPORTED, SHARED_MEMORY_UNSUPPORTED)

        @_answers_errors
        def SystemSharedMemoryUnregister(self, request: Any, context: Any) -> Any:
            return pb.SystemSharedMemoryUnregisterResponse()

        @_answers_errors
        def CudaSharedMemoryStatus(self, request: Any, context: Any) -> Any:
            return pb.CudaSharedMemoryStatusResponse()

        @_answers_errors
        def CudaSharedMemoryRegister(self, request: Any, context: Any) -> Any:
            raise ServingError(Code.UNSUPPORTED, SHARED_MEMORY_UNSUPPORTED)

        @_answers_errors
        def CudaSharedMemoryUnregister(self, request: Any, context: Any) -> Any:
            return pb.CudaSharedMemoryUnregisterResponse()

        @_answers_errors
        def RepositoryIndex(self, request: Any, context: Any) -> Any:
            return pb.RepositoryIndexResponse(
                models=[pb.RepositoryIndexResponse.ModelIndex(**e) for e in manager.index(request.ready)]
            )

        @_answers_errors
        def RepositoryModelLoad(self, request: Any, context: Any) -> Any:
            config = None
            for key, value in request.parameters.items():
                if key == "config":
                    config = value.string_param
                elif key.startswith("file:"):
                    raise ServingError(
                        Code.UNSUPPORTED, "loading a model from files sent with the request is not supported"
                    )
            manager.load(request.model_name, config)
            return pb.RepositoryModelLoadResponse()

        @_answers_errors
        def RepositoryModelUnload(self, request: Any, context: Any) -> Any:
            manager.unload(request.model_name)
            return pb.RepositoryModelUnloadResponse()

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grpc"),
        options=[("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)],
    )
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(TritonService(), server)
    if server.add_insecure_port(address) == 0:
        raise OSError(f"cannot bind the gRPC port at {address}")
    return server

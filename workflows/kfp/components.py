"""How a step module runs as a Kubeflow Pipelines v2 container component.

Steps hand over exactly as on Argo: a step writes `$MLOPS_OUTPUTS_DIR/<name>`; a small shell
wrapper (STEP_WRAPPER) points that at a scratch folder and copies each file to the KFP output
path (`dsl.OutputPath(str)`), which downstream tasks read as a parameter. `step_component` turns
a function from a step's inputs to its flags into such a component; workflows/kfp/llm_pipeline.py
defines the steps and chains them. Nothing here imports kfp before a component is made.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

# Run one step module and hand its outputs to KFP. Arguments: the module, the workflow name
# (MLOPS_WORKFLOW_NAME, for the audit trail), the MLflow URI, the S3 endpoint ("" = AWS), then
# `<output-name>=<kfp-output-path>` pairs, `--`, and the step's own flags. torch's OpenMP threads
# sleep while they wait, as the Argo training workflows set it (docs/performance.md)
STEP_WRAPPER = """\
set -eu
module="$1"
export MLOPS_WORKFLOW_NAME="$2" MLFLOW_TRACKING_URI="$3" AWS_ENDPOINT_URL="$4" OMP_WAIT_POLICY=PASSIVE
shift 4
MLOPS_OUTPUTS_DIR="$(mktemp -d)"
export MLOPS_OUTPUTS_DIR
pairs=""
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do pairs="$pairs $1"; shift; done
[ "$#" -gt 0 ] && shift
python -m "$module" "$@"
for pair in $pairs; do
  name="${pair%%=*}"
  target="${pair#*=}"
  mkdir -p "$(dirname "$target")"
  cp "$MLOPS_OUTPUTS_DIR/$name" "$target"
done
"""

# The inputs every step component takes first, in the wrapper's order: the workflow name, the
# MLflow URI and the S3 endpoint.
SERVICE_INPUTS = ("workflow_name", "mlflow_tracking_uri", "s3_endpoint_url")


@dataclass(frozen=True)
class Images:
    """The two step images (the Argo workflows' `llm-training-image` and `vllm-deployment-image`)."""

    training: str = "111122223333.dkr.ecr.us-east-1.amazonaws.com/mlops-k8s/vllm-training:0.1.0"
    deployment: str = "111122223333.dkr.ecr.us-east-1.amazonaws.com/mlops-k8s/vllm-deployment-tools:0.1.2"


def step_spec(
    image: str,
    module: str,
    service: list[Any],
    outputs: dict[str, Any],
    flags: list[Any],
) -> Any:
    """The ContainerSpec of one step: the wrapper, the module, its outputs and its flags."""
    from kfp import dsl

    pairs = [f"{name}={path}" for name, path in outputs.items()]
    return dsl.ContainerSpec(
        image=image,
        command=["sh", "-c", STEP_WRAPPER, "mlops-step"],
        args=[module, *service, *pairs, "--", *flags],
    )


def step_component(
    image: str, module: str, outputs: Sequence[str] = ()
) -> Callable[[Callable[..., list[str]]], Any]:
    """Decorate `flags(<inputs>) -> the step's --flags` into the container component of `module`.

    The component's inputs are SERVICE_INPUTS, then the parameters of `flags` (their names and
    annotations), then one `dsl.OutputPath(str)` per name in `outputs` (the step's kebab-case
    output names; the KFP output is the snake_case spelling).
    """
    from kfp import dsl

    def decorate(flags: Callable[..., list[str]]) -> Any:
        own = list(inspect.signature(flags).parameters.values())
        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
        service = [inspect.Parameter(name, kind, annotation=str) for name in SERVICE_INPUTS]
        written = {name: name.replace("-", "_") for name in outputs}
        results = [inspect.Parameter(name, kind, annotation=dsl.OutputPath(str)) for name in written.values()]
        parameters = [*service, *own, *results]

        # KFP calls a container component once, positionally, with a placeholder per input.
        def component(*placeholders: Any) -> Any:
            given = dict(zip((p.name for p in parameters), placeholders, strict=True))
            return step_spec(
                image,
                module,
                [given[name] for name in SERVICE_INPUTS],
                {name: given[kfp_name] for name, kfp_name in written.items()},
                flags(**{p.name: given[p.name] for p in own}),
            )

        component.__name__ = component.__qualname__ = flags.__name__
        component.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        return dsl.container_component(component)

    return decorate

"""The LLM pipeline (pipeline 2) for Kubeflow Pipelines v2, as container components.

The same step modules the Argo WorkflowTemplates run (workflows/vllm-training.yaml,
vllm-deployment.yaml, vllm-evaluation.yaml, vllm-performance.yaml, vllm-promote.yaml), with the
same flags, in the same images:

  prepare_data -> build_base -> token_stats -> finetune -> register (loss gate, `candidate`)
  -> [verdict pass] load_adapter -> smoke_test (`staged`)
  -> generate -> judge -> gate (`eval-passed|eval-failed`)
  -> [verdict pass] loadtest -> gate (`perf-passed|perf-failed`)
  -> [verdict pass] release values (the probe split, tags probe.release.*) -> promote (`live`, `previous`)
  reconcile (vLLM LoRA slots) as the exit handler of everything after the loss gate.

Each component is a function from the step's inputs to its flags, made into a container
component by workflows/kfp/components.py (the step wrapper and the output handover, exactly as
on Argo). Nothing runs at import: `build_pipeline(...)` defines the components and returns the
pipeline; scripts/compile_kfp.py compiles it to the IR YAML. workflows/kfp/README.md says what
differs from the Argo version.
"""

# No `from __future__ import annotations`: KFP reads the components' annotations (the step
# functions' parameters become component inputs) at definition time.
from typing import Any

from workflows.kfp.components import Images, step_component

__all__ = ["PIPELINE_NAME", "Images", "build_pipeline"]

PIPELINE_NAME = "vllm-llm-pipeline"


ADAPTER_CLAIM = "vllm-adapters"


def slot_flags(model_name: str, served_name: str, endpoints: str, adapter_dir: str) -> list[str]:
    """The flags that name one vLLM LoRA slot, as every vLLM deployment step takes them."""
    return [
        f"--model-name={model_name}",
        f"--served-name={served_name}",
        f"--endpoints={endpoints}",
        f"--adapter-dir={adapter_dir}",
    ]


def build_pipeline(images: Images | None = None) -> Any:
    """Define the components for these images and return the pipeline function."""
    from kfp import dsl, kubernetes

    images = images or Images()
    train, deploy = images.training, images.deployment

    # --- training (vllm-training) ---------------------------------------------------------

    @step_component(train, "training.llm.prepare_data", outputs=("dataset-uri", "data-run-id"))
    def prepare_data(
        source: str,
        synthetic_documents: int,
        dataset_prefix: str,
        max_context_chars: int,
        seed: int,
        experiment: str,
    ) -> list[str]:
        return [
            f"--source={source}",
            f"--synthetic-documents={synthetic_documents}",
            f"--dataset-prefix={dataset_prefix}",
            f"--max-context-chars={max_context_chars}",
            f"--seed={seed}",
            f"--experiment={experiment}",
        ]

    @step_component(train, "training.llm.build_base", outputs=("base-uri", "base-run-id"))
    def build_base(
        source: str,
        dataset_uri: str,
        base_prefix: str,
        pretrain_epochs: int,
        seed: int,
        experiment: str,
    ) -> list[str]:
        return [
            f"--source={source}",
            f"--dataset-uri={dataset_uri}",
            f"--base-prefix={base_prefix}",
            f"--pretrain-epochs={pretrain_epochs}",
            f"--seed={seed}",
            f"--experiment={experiment}",
        ]

    @step_component(train, "training.llm.token_stats", outputs=("max-tokens",))
    def token_stats(dataset_uri: str, base_uri: str, data_run_id: str, max_seq_length: int) -> list[str]:
        return [
            f"--dataset-uri={dataset_uri}",
            f"--base-uri={base_uri}",
            f"--data-run-id={data_run_id}",
            f"--max-seq-length={max_seq_length}",
        ]

    @step_component(
        train,
        "training.llm.finetune",
        outputs=("run-id", "eval-loss", "perplexity", "train-tokens-per-s"),
    )
    def finetune(
        dataset_uri: str,
        base_uri: str,
        method: str,
        preset: str,
        lora_r: int,
        max_lora_rank: int,
        epochs: int,
        batch_size: int,
        learning_rate: str,
        max_seq_length: int,
        early_stopping_patience: int,
        seed: int,
        experiment: str,
    ) -> list[str]:
        return [
            f"--dataset-uri={dataset_uri}",
            f"--base-uri={base_uri}",
            f"--method={method}",
            f"--preset={preset}",
            f"--lora-r={lora_r}",
            f"--max-lora-rank={max_lora_rank}",
            f"--epochs={epochs}",
            f"--batch-size={batch_size}",
            f"--learning-rate={learning_rate}",
            f"--max-seq-length={max_seq_length}",
            f"--early-stopping-patience={early_stopping_patience}",
            f"--seed={seed}",
            f"--experiment={experiment}",
        ]

    @step_component(train, "training.llm.register", outputs=("verdict", "reason", "version"))
    def register(
        run_id: str, model_name: str, max_eval_loss: str, max_perplexity: str, max_lora_rank: int
    ) -> list[str]:
        return [
            f"--run-id={run_id}",
            f"--model-name={model_name}",
            f"--max-eval-loss={max_eval_loss}",
            f"--max-perplexity={max_perplexity}",
            f"--max-lora-rank={max_lora_rank}",
        ]

    # --- vLLM deployment (vllm-deployment, vllm-promote) ----------------------------------

    @step_component(deploy, "deployment.vllm.load_adapter", outputs=("version",))
    def load_adapter(
        model_name: str, served_name: str, endpoints: str, adapter_dir: str, max_lora_rank: int
    ) -> list[str]:
        return [
            *slot_flags(model_name, served_name, endpoints, adapter_dir),
            f"--max-lora-rank={max_lora_rank}",
        ]

    @step_component(deploy, "deployment.vllm.smoke_test", outputs=("version",))
    def smoke_test(
        model_name: str,
        served_name: str,
        endpoints: str,
        adapter_dir: str,
        max_latency_s: str,
        loaded_version: str,
    ) -> list[str]:
        return [
            *slot_flags(model_name, served_name, endpoints, adapter_dir),
            f"--max-latency-s={max_latency_s}",
            f"--version={loaded_version}",
        ]

    @step_component(deploy, "deployment.vllm.promote", outputs=("live",))
    def promote(
        model_name: str, served_name: str, endpoints: str, adapter_dir: str, promote_version: str
    ) -> list[str]:
        return [
            *slot_flags(model_name, served_name, endpoints, adapter_dir),
            f"--version={promote_version}",
        ]

    @step_component(deploy, "evaluation.probe", outputs=("score",))
    def release_values(
        model_name: str,
        served_name: str,
        endpoints: str,
        version: str,
        judges: str,
        judge_endpoint: str,
        judge_model: str,
        max_tokens: int,
        concurrency: int,
    ) -> list[str]:
        return [
            "--mode=release",
            f"--model-name={model_name}",
            f"--version={version}",
            f"--endpoints={endpoints}",
            f"--served-name={served_name}",
            f"--judges={judges}",
            f"--judge-endpoint={judge_endpoint}",
            f"--judge-model={judge_model}",
            f"--max-tokens={max_tokens}",
            f"--concurrency={concurrency}",
        ]

    @step_component(deploy, "deployment.vllm.reconcile")
    def reconcile(model_name: str, served_name: str, endpoints: str, adapter_dir: str) -> list[str]:
        return slot_flags(model_name, served_name, endpoints, adapter_dir)

    # --- evaluation (vllm-evaluation) -----------------------------------------------------

    @step_component(deploy, "evaluation.generate", outputs=("run-id", "staged-version", "live-version"))
    def generate(
        model_name: str,
        endpoints: str,
        served_name: str,
        limit: int,
        max_tokens: int,
        concurrency: int,
        seed: int,
        experiment: str,
    ) -> list[str]:
        return [
            f"--model-name={model_name}",
            f"--endpoints={endpoints}",
            f"--served-name={served_name}",
            f"--limit={limit}",
            f"--max-tokens={max_tokens}",
            f"--concurrency={concurrency}",
            f"--seed={seed}",
            f"--experiment={experiment}",
        ]

    @step_component(deploy, "evaluation.judge", outputs=("unparseable",))
    def judge(
        run_id: str,
        backend: str,
        judge_endpoint: str,
        judge_model: str,
        pairwise: str,
        concurrency: int,
    ) -> list[str]:
        return [
            f"--run-id={run_id}",
            f"--backend={backend}",
            f"--judge-endpoint={judge_endpoint}",
            f"--judge-model={judge_model}",
            f"--pairwise={pairwise}",
            f"--concurrency={concurrency}",
        ]

    @step_component(deploy, "evaluation.gate", outputs=("verdict", "reason", "version"))
    def evaluation_gate(
        run_id: str,
        model_name: str,
        min_refusal_accuracy: str,
        min_a_rate: str,
        max_c_rate: str,
        margin: str,
        require_significance: str,
        min_type_a_rate: str,
        seed: int,
    ) -> list[str]:
        return [
            f"--run-id={run_id}",
            f"--model-name={model_name}",
            f"--min-refusal-accuracy={min_refusal_accuracy}",
            f"--min-a-rate={min_a_rate}",
            f"--max-c-rate={max_c_rate}",
            f"--margin={margin}",
            f"--require-significance={require_significance}",
            f"--min-type-a-rate={min_type_a_rate}",
            f"--seed={seed}",
        ]

    # --- performance (vllm-performance) ---------------------------------------------------

    @step_component(
        deploy,
        "performance.loadtest",
        outputs=(
            "run-id",
            "version",
            "success-rate",
            "request-throughput",
            "p95-latency-s",
            "server-metrics-source",
        ),
    )
    def loadtest(
        model_name: str,
        vllm_url: str,
        served_model: str,
        server_model_name: str,
        prometheus_url: str,
        prometheus_pad_s: str,
        api: str,
        concurrency: int,
        request_rate: str,
        duration_s: str,
        warmup_s: str,
        max_tokens: int,
        slo_ttft_s: str,
        slo_e2el_s: str,
        experiment: str,
    ) -> list[str]:
        return [
            f"--model-name={model_name}",
            f"--vllm-url={vllm_url}",
            f"--served-model={served_model}",
            f"--server-model-name={server_model_name}",
            f"--prometheus-url={prometheus_url}",
            f"--prometheus-pad-s={prometheus_pad_s}",
            f"--api={api}",
            f"--concurrency={concurrency}",
            f"--request-rate={request_rate}",
            f"--duration-s={duration_s}",
            f"--warmup-s={warmup_s}",
            f"--max-tokens={max_tokens}",
            f"--slo-ttft-s={slo_ttft_s}",
            f"--slo-e2el-s={slo_e2el_s}",
            f"--experiment={experiment}",
            "--progress=false",
        ]

    @step_component(deploy, "performance.gate", outputs=("verdict", "reason", "version", "baseline-version"))
    def performance_gate(
        run_id: str,
        model_name: str,
        max_p95_latency_s: str,
        max_ttft_p95_s: str,
        min_throughput_rps: str,
        min_success_rate: str,
        max_latency_ratio: str,
        max_ttft_ratio: str,
        min_throughput_ratio: str,
        max_success_rate_drop: str,
    ) -> list[str]:
        return [
            f"--run-id={run_id}",
            f"--model-name={model_name}",
            f"--max-p95-latency-s={max_p95_latency_s}",
            f"--max-ttft-p95-s={max_ttft_p95_s}",
            f"--min-throughput-rps={min_throughput_rps}",
            f"--min-success-rate={min_success_rate}",
            f"--max-latency-ratio={max_latency_ratio}",
            f"--max-ttft-ratio={max_ttft_ratio}",
            f"--min-throughput-ratio={min_throughput_ratio}",
            f"--max-success-rate-drop={max_success_rate_drop}",
        ]

    # --- the pipeline ---------------------------------------------------------------------

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="RAG-QA data -> LoRA fine-tune -> loss gate -> vLLM candidate slot -> "
        "LLM-as-judge evaluation -> load test -> promote (the Argo vllm-* workflows, on KFP v2)",
    )
    def llm_pipeline(
        mlflow_tracking_uri: str = "http://mlflow.mlops.svc:5000",
        s3_endpoint_url: str = "",
        lora_model_name: str = "mistral-7b-lora",
        seed: int = 42,
        # data and base model (vllm-training)
        qa_data_source: str = "s3://mlops-data/raw/rag-qa.jsonl",
        qa_dataset_prefix: str = "s3://mlops-data/datasets/rag-qa",
        synthetic_documents: int = 120,
        max_context_chars: int = 6000,
        base_model_source: str = "s3://mlops-models/base/mistral-7b-instruct",
        base_prefix: str = "s3://mlops-models/base",
        pretrain_epochs: int = 8,
        # fine-tune and loss gate
        lora_method: str = "lora",
        lora_preset: str = "standard",
        lora_r: int = 0,
        lora_epochs: int = 3,
        lora_batch_size: int = 16,
        lora_learning_rate: str = "2e-4",
        max_seq_length: int = 2048,
        early_stopping_patience: int = 2,
        max_eval_loss: str = "1.0",
        max_perplexity: str = "2.0",
        max_lora_rank: int = 16,
        # vLLM (vllm-deployment, vllm-promote)
        vllm_served_name: str = "aws-rag-qa",
        vllm_endpoints: str = "k8s://mlops/app.kubernetes.io/name=vllm:8000",
        vllm_adapter_dir: str = "/adapters",
        smoke_max_latency_s: str = "10",
        # evaluation (vllm-evaluation)
        eval_limit: int = 1200,
        eval_max_tokens: int = 256,
        eval_concurrency: int = 16,
        judge_backend: str = "llm",
        judge_endpoint: str = "http://vllm.mlops.svc:8000",
        judge_model: str = "aws-rag-qa",
        judge_pairwise: str = "true",
        eval_min_refusal_accuracy: str = "0.9",
        eval_min_a_rate: str = "0.5",
        eval_max_c_rate: str = "0.3",
        eval_margin: str = "0.0",
        eval_require_significance: str = "false",
        eval_min_type_a_rate: str = "0",
        # performance (vllm-performance)
        vllm_url: str = "http://vllm.mlops.svc:8000",
        candidate_served_model: str = "aws-rag-qa-candidate",
        prometheus_url: str = "",
        prometheus_scrape_interval_s: str = "30",
        perf_api: str = "completions",
        perf_concurrency: int = 16,
        perf_request_rate: str = "0",
        perf_duration_s: str = "120",
        perf_warmup_s: str = "15",
        perf_max_tokens: int = 128,
        perf_max_p95_latency_s: str = "8",
        perf_max_ttft_p95_s: str = "2",
        perf_min_throughput_rps: str = "2",
        perf_min_success_rate: str = "0.99",
        perf_max_latency_ratio: str = "1.15",
        perf_max_ttft_ratio: str = "1.15",
        perf_min_throughput_ratio: str = "0.85",
        perf_max_success_rate_drop: str = "0.005",
    ):
        service = {
            "workflow_name": dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
            "mlflow_tracking_uri": mlflow_tracking_uri,
            "s3_endpoint_url": s3_endpoint_url,
        }
        vllm = {
            "model_name": lora_model_name,
            "served_name": vllm_served_name,
            "endpoints": vllm_endpoints,
            "adapter_dir": vllm_adapter_dir,
        }

        def uncached(task: Any) -> Any:
            # Steps read and move registry aliases: a cached result would skip the move.
            return task.set_caching_options(False)

        def on_adapters(task: Any) -> Any:
            # The steps that fetch adapters write where the vLLM pods read them: the shared
            # volume (claim vllm-adapters in the pipeline's namespace, infra/vllm) at /adapters.
            kubernetes.mount_pvc(task, pvc_name=ADAPTER_CLAIM, mount_path="/adapters")
            return uncached(task)

        # Whatever happens, leave the vLLM LoRA slots as the registry aliases say (the Argo
        # vllm-deployment and vllm-promote onExit). KFP allows an exit handler only at the
        # outermost scope, so it wraps the whole run; with no alias moved it changes nothing.
        cleanup = on_adapters(reconcile(**service, **vllm)).set_display_name("reconcile")
        with dsl.ExitHandler(cleanup, name="llm-pipeline"):
            # Same data, same settings: KFP's cache reuses the prepared dataset (the Argo version memoizes).
            data = prepare_data(
                **service,
                source=qa_data_source,
                synthetic_documents=synthetic_documents,
                dataset_prefix=qa_dataset_prefix,
                max_context_chars=max_context_chars,
                seed=seed,
                experiment=lora_model_name,
            ).set_display_name("prepare-data")
            base = uncached(
                build_base(
                    **service,
                    source=base_model_source,
                    dataset_uri=data.outputs["dataset_uri"],
                    base_prefix=base_prefix,
                    pretrain_epochs=pretrain_epochs,
                    seed=seed,
                    experiment=lora_model_name,
                )
            ).set_display_name("build-base")
            base.set_cpu_request("2").set_memory_request("4Gi")
            stats = uncached(
                token_stats(
                    **service,
                    dataset_uri=data.outputs["dataset_uri"],
                    base_uri=base.outputs["base_uri"],
                    data_run_id=data.outputs["data_run_id"],
                    max_seq_length=max_seq_length,
                )
            ).set_display_name("token-stats")
            tuned = uncached(
                finetune(
                    **service,
                    dataset_uri=data.outputs["dataset_uri"],
                    base_uri=base.outputs["base_uri"],
                    method=lora_method,
                    preset=lora_preset,
                    lora_r=lora_r,
                    max_lora_rank=max_lora_rank,
                    epochs=lora_epochs,
                    batch_size=lora_batch_size,
                    learning_rate=lora_learning_rate,
                    max_seq_length=max_seq_length,
                    early_stopping_patience=early_stopping_patience,
                    seed=seed,
                    experiment=lora_model_name,
                )
            ).set_display_name("finetune")
            tuned.set_cpu_request("2").set_memory_request("8Gi")
            tuned.after(stats)  # as on Argo: token statistics first, they fail fast on bad lengths
            registered = uncached(
                register(
                    **service,
                    run_id=tuned.outputs["run_id"],
                    model_name=lora_model_name,
                    max_eval_loss=max_eval_loss,
                    max_perplexity=max_perplexity,
                    max_lora_rank=max_lora_rank,
                )
            ).set_display_name("register")

            with dsl.If(registered.outputs["verdict"] == "pass", name="candidate"):
                loaded = on_adapters(
                    load_adapter(**service, **vllm, max_lora_rank=max_lora_rank)
                ).set_display_name("load-adapter")
                smoked = uncached(
                    smoke_test(
                        **service,
                        **vllm,
                        max_latency_s=smoke_max_latency_s,
                        loaded_version=loaded.outputs["version"],
                    )
                ).set_display_name("smoke-test")
                generated = uncached(
                    generate(
                        **service,
                        model_name=lora_model_name,
                        endpoints=vllm_endpoints,
                        served_name=vllm_served_name,
                        limit=eval_limit,
                        max_tokens=eval_max_tokens,
                        concurrency=eval_concurrency,
                        seed=seed,
                        experiment=lora_model_name,
                    )
                ).set_display_name("generate")
                generated.after(smoked)
                judged = uncached(
                    judge(
                        **service,
                        run_id=generated.outputs["run_id"],
                        backend=judge_backend,
                        judge_endpoint=judge_endpoint,
                        judge_model=judge_model,
                        pairwise=judge_pairwise,
                        concurrency=eval_concurrency,
                    )
                ).set_display_name("judge")
                evaluated = uncached(
                    evaluation_gate(
                        **service,
                        run_id=generated.outputs["run_id"],
                        model_name=lora_model_name,
                        min_refusal_accuracy=eval_min_refusal_accuracy,
                        min_a_rate=eval_min_a_rate,
                        max_c_rate=eval_max_c_rate,
                        margin=eval_margin,
                        require_significance=eval_require_significance,
                        min_type_a_rate=eval_min_type_a_rate,
                        seed=seed,
                    )
                ).set_display_name("evaluation-gate")
                evaluated.after(judged)
                with dsl.If(evaluated.outputs["verdict"] == "pass", name="eval-passed"):
                    loaded_test = uncached(
                        loadtest(
                            **service,
                            model_name=lora_model_name,
                            vllm_url=vllm_url,
                            served_model=candidate_served_model,
                            server_model_name=vllm_served_name,
                            prometheus_url=prometheus_url,
                            prometheus_pad_s=prometheus_scrape_interval_s,
                            api=perf_api,
                            concurrency=perf_concurrency,
                            request_rate=perf_request_rate,
                            duration_s=perf_duration_s,
                            warmup_s=perf_warmup_s,
                            max_tokens=perf_max_tokens,
                            slo_ttft_s=perf_max_ttft_p95_s,
                            slo_e2el_s=perf_max_p95_latency_s,
                            experiment=lora_model_name,
                        )
                    ).set_display_name("loadtest")
                    loaded_test.set_cpu_request("1").set_memory_request("1Gi")
                    performed = uncached(
                        performance_gate(
                            **service,
                            run_id=loaded_test.outputs["run_id"],
                            model_name=lora_model_name,
                            max_p95_latency_s=perf_max_p95_latency_s,
                            max_ttft_p95_s=perf_max_ttft_p95_s,
                            min_throughput_rps=perf_min_throughput_rps,
                            min_success_rate=perf_min_success_rate,
                            max_latency_ratio=perf_max_latency_ratio,
                            max_ttft_ratio=perf_max_ttft_ratio,
                            min_throughput_ratio=perf_min_throughput_ratio,
                            max_success_rate_drop=perf_max_success_rate_drop,
                        )
                    ).set_display_name("performance-gate")
                    with dsl.If(performed.outputs["verdict"] == "pass", name="perf-passed"):
                        # the probe split on the candidate slot, stored on the version for the
                        # daily probe (workflows/llm-probe.yaml)
                        released = uncached(
                            release_values(
                                **service,
                                model_name=lora_model_name,
                                served_name=vllm_served_name,
                                endpoints=vllm_endpoints,
                                version=performed.outputs["version"],
                                judges=judge_backend,
                                judge_endpoint=judge_endpoint,
                                judge_model=judge_model,
                                max_tokens=eval_max_tokens,
                                concurrency=eval_concurrency,
                            )
                        ).set_display_name("release-values")
                        on_adapters(
                            promote(**service, **vllm, promote_version=performed.outputs["version"])
                        ).set_display_name("promote").after(released)

    return llm_pipeline

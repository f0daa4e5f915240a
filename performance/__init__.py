"""Load testing of a vLLM slot: client-side latencies, server-side metrics, SLO and baseline gate.

- `loadgen`: async streaming client for the OpenAI completions and chat APIs (also a CLI);
- `summary`: percentiles, throughput and goodput of the request records (the figures
  `vllm bench serve` prints, under its names);
- `prometheus`: the same window seen by the server, through PromQL or /metrics scrape deltas;
- `loadtest` (step): load-test the slot of the `staged` version, log everything to MLflow;
- `gate` (step): absolute SLOs and the `perf-passed` baseline -> `perf-passed` / `perf-failed`;
- `report`: latency plots and the results JSON.
"""

"""The swap benchmark's accounting: which requests a swap touched, and the worst TTFT against steady."""

from __future__ import annotations

import pytest

from benchmarks.swap_timeline import Request, percentile, swap_figures, touched, ttft_figures

SWAP = [(10.0, 10.2)]


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (Request(9.9, 10.05, 10.3, 16), True),  # waiting for its first token while the swap ran
        (Request(9.0, 10.0, 10.5, 16), True),  # first token exactly when the swap started
        (Request(10.6, 10.65, 11.2, 16), True),  # started within 0.5 s after the swap ended
        (Request(10.8, 10.85, 11.1, 16), False),  # started more than 0.5 s after
        (Request(9.0, 9.5, 10.1, 16), False),  # had its first token before the swap began
        (Request(9.9, None, 10.4, 0, "HTTP 500"), True),  # no token: waiting until it ended
    ],
)
def test_touched_by_a_swap(request_: Request, expected: bool) -> None:
    assert touched(request_, SWAP) is expected


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0 and percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0 and percentile([3.0], 99) == 3.0
    assert percentile([], 99) is None


def test_ttft_and_tpot_of_successful_requests_only() -> None:
    requests = [
        Request(0.0, 0.030, 0.180, 16),  # ttft 30 ms, tpot 10 ms
        Request(0.0, 0.050, 0.200, 16),  # ttft 50 ms, tpot 10 ms
        Request(0.0, None, 5.0, 0, "ReadTimeout"),
    ]
    figures = ttft_figures(requests)
    assert (figures["requests"], figures["failed"]) == (3, 1)
    assert figures["ttft_p50_ms"] == 40.0 and figures["ttft_max_ms"] == 50.0
    assert figures["tpot_p50_ms"] == 10.0


def test_worst_ttft_is_compared_with_the_steady_p99() -> None:
    requests = [Request(10.0, 10.9, 11.0, 2), Request(20.0, 20.03, 20.1, 2)]
    figures = swap_figures(requests, SWAP, steady_p99_ms=100.0)
    assert figures["ttft_max_ms"] == 900.0 and figures["worst_over_steady_p99"] == 9.0
    assert figures["touched_by_a_swap"]["requests"] == 1
    assert figures["touched_by_a_swap"]["ttft_max_ms"] == 900.0
    assert figures["not_touched"]["ttft_max_ms"] == 30.0
    assert figures["swap_median_ms"] == 200.0
    assert swap_figures(requests, SWAP, steady_p99_ms=None)["worst_over_steady_p99"] is None


def test_adapter_loads_are_counted_from_strace_opens_in_the_phase() -> None:
    from benchmarks.vllm_swap import adapter_opens

    trace = "\n".join(
        [
            '21755 100.5 openat(AT_FDCWD, "/a/adapter_config.json", O_RDONLY|O_CLOEXEC) = 24',
            '21755 100.6 openat(AT_FDCWD, "/a/adapter_model.safetensors", O_RDONLY) = 25',
            '21755 101.5 openat(AT_FDCWD, "/b/adapter_config.json", O_RDONLY|O_CLOEXEC <unfinished ...>',
            "21755 101.6 <... openat resumed>) = 24",
            '21756 102.5 openat(AT_FDCWD, "/usr/lib/libc.so.6", O_RDONLY) = 3',
            '21755 103.5 openat(AT_FDCWD, "/a/adapter_config.json", O_RDONLY|O_CLOEXEC) = 24',
            "+++ exited with 0 +++",
        ]
    )
    assert adapter_opens(trace, 100.0, 103.0) == 2
    assert adapter_opens(trace, 103.0, 104.0) == 1
    assert adapter_opens(trace, 104.0, 105.0) == 0

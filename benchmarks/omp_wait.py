"""ResNet-18 training steps with torch's OpenMP threads spinning or sleeping while they wait.

The training workflows set OMP_WAIT_POLICY=PASSIVE on every container (workflows/triton-training.yaml,
workflows/vllm-training.yaml). This measures why: the same training step (`train`'s model, batch 64,
32 px, SGD) in a fresh process per setting, on a quiet machine and with one core taken by another
busy process, as a pod's neighbours or the local stack's servers take it. OpenMP reads the variable
when torch loads, so each setting is its own process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.child import child_figures

REPO_ROOT = Path(__file__).resolve().parents[1]

# one training step after a warm-up, repeated; prints the mean {"wall_s", "cpu_s"} of a step and torch's version
_STEP = """
import json, sys, time, torch
from training.resnet.model import build_model
threads, steps = int(sys.argv[1]), int(sys.argv[2])
torch.manual_seed(0)
torch.set_num_threads(threads)
model = build_model(num_classes=10)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
x, y = torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,))
def step():
    optimizer.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
step()
wall, cpu = time.monotonic(), time.process_time()
for _ in range(steps):
    step()
wall, cpu = (time.monotonic() - wall) / steps, (time.process_time() - cpu) / steps
print(json.dumps({"wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "torch": torch.__version__}))
"""

_BUSY = "import sys, time\nend = time.monotonic() + float(sys.argv[1])\nwhile time.monotonic() < end: pass\n"


def _measure(threads: int, policy: str | None, steps: int) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    return child_figures(["-c", _STEP, str(threads), str(steps)], env, timeout=600)


def bench_omp_wait(steps: int = 12) -> dict[str, Any]:
    """Per-step wall and CPU seconds for (threads, policy) on a quiet machine and beside a busy core.

    torch is loaded only in the measured processes (its version comes back with their figures)."""
    settings = [(2, None), (2, "PASSIVE"), (1, None)]
    rows = []
    for load in ("quiet", "one core busy"):
        busy = None
        if load != "quiet":
            busy = subprocess.Popen([sys.executable, "-c", _BUSY, "3600"])
            time.sleep(0.5)
        try:
            for threads, policy in settings:
                figures = _measure(threads, policy, steps)
                version = figures.pop("torch")
                rows.append({"load": load, "threads": threads, "policy": policy or "unset", **figures})
                print(
                    f"  {load}: {threads} threads, OMP_WAIT_POLICY={policy or 'unset'}: {figures}", flush=True
                )
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()
    return {
        "benchmark": "omp_wait",
        "model": "ResNet-18 of training.resnet.model (torchvision resnet18), 10 classes, batch 64, 32 px, SGD",
        "steps": steps,
        "torch": version,
        "results": rows,
    }

"""A tiny container command for the golden workflows: write outputs, sleep, print, exit with a code.

Run as `python tests/unit/argo/golden_step.py --out verdict=pass --sleep 0.2 --exit 0`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", action="append", default=[], metavar="NAME=VALUE", help="write an output")
    parser.add_argument("--say", action="append", default=[], help="print a line to stdout")
    parser.add_argument("--stderr", action="append", default=[], help="print a line to stderr")
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--record", help="append 'start LABEL T' and 'end LABEL T' lines to this file")
    parser.add_argument("--label", default="step")
    parser.add_argument("--exit", type=int, default=0, help="exit code")
    parser.add_argument("--succeed-from-attempt", type=int, help="exit 0 once --attempt reaches this")
    parser.add_argument("--attempt", type=int, default=0)
    args = parser.parse_args(argv)

    record = Path(args.record) if args.record else None
    if record:
        with record.open("a") as fh:
            fh.write(f"start {args.label} {time.time():.6f}\n")
    for line in args.say:
        print(line, flush=True)
    for line in args.stderr:
        print(line, file=sys.stderr, flush=True)
    if args.sleep:
        time.sleep(args.sleep)
    outputs = Path(os.environ.get("MLOPS_OUTPUTS_DIR", "/tmp/outputs"))
    outputs.mkdir(parents=True, exist_ok=True)
    for pair in args.out:
        name, _, value = pair.partition("=")
        (outputs / name).write_text(value + "\n")
    if record:
        with record.open("a") as fh:
            fh.write(f"end {args.label} {time.time():.6f}\n")
    if args.succeed_from_attempt is not None:
        return 0 if args.attempt >= args.succeed_from_attempt else args.exit
    return args.exit


if __name__ == "__main__":
    sys.exit(main())

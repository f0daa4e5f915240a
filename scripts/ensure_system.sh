#!/usr/bin/env bash
# System packages the local stack needs and pip cannot provide: Debian's `prometheus` (the
# metrics service of `mlops up`). Installs only what is missing; needs root or sudo the first time.
set -euo pipefail
if command -v prometheus >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure_system: no prometheus binary and no apt-get here; install Prometheus 2.x and put it on PATH" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" != "0" ]; then
  sudo="sudo"
fi
echo "ensure_system: installing Debian's prometheus (once)" >&2
$sudo apt-get update -q >&2
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends prometheus >&2

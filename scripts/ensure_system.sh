#!/usr/bin/env bash
# System packages pip cannot provide: Debian's `prometheus` (the metrics service of `mlops up`, and
# `promtool` for the alert-rule tests), `prometheus-pushgateway` (where the probes push their
# figures, a service of `mlops up`) and `chromium` (headless, for the tests that look at the HTML
# reports as a person does). Installs only what is missing; needs root or sudo the first time.
set -euo pipefail
missing=()
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v prometheus-pushgateway >/dev/null 2>&1 || missing+=(prometheus-pushgateway)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure_system: missing ${missing[*]} and no apt-get here; install them and put them on PATH" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" != "0" ]; then
  sudo="sudo"
fi
echo "ensure_system: installing Debian's ${missing[*]} (once)" >&2
$sudo apt-get update -q >&2
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >&2

"""Publishing a batch job's figures to a Prometheus Pushgateway.

A probe runs once and exits, so Prometheus cannot scrape it: it pushes its gauges to the
Pushgateway, which Prometheus scrapes with `honor_labels: true` (the pushed `job` and labels are
kept). One push replaces every metric of its group (`job` plus the grouping key), so a new version's
figures replace the last version's instead of lingering beside them. The Pushgateway stamps each
group with `push_time_seconds`, which says when a probe last ran.

The body is Prometheus' text exposition format (gauges only); the grouping key goes into the URL
path base64-encoded (`/<label>@base64/<value>`), so any value is safe there.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import httpx

from mlops.errors import BadInput, Transient

_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


@dataclass(frozen=True)
class Gauge:
    """One gauge sample: a metric name, its labels and a finite value."""

    name: str
    value: float
    labels: Mapping[str, str] = field(default_factory=dict)
    help: str = ""


class MetricsSink(Protocol):
    """Where a probe's gauges go: the Pushgateway, or a list in unit tests."""

    def push(self, job: str, grouping: Mapping[str, str], gauges: list[Gauge]) -> None: ...


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def exposition(gauges: Iterable[Gauge]) -> str:
    """Gauges as Prometheus' text format: one HELP/TYPE block per metric name, samples after it."""
    by_name: dict[str, list[Gauge]] = {}
    for gauge in gauges:
        if not _NAME.match(gauge.name):
            raise BadInput(f"{gauge.name!r} is not a Prometheus metric name")
        bad = [k for k in gauge.labels if not _LABEL.match(k) or k.startswith("__")]
        if bad:
            raise BadInput(f"{gauge.name}: {bad} are not Prometheus label names")
        if not math.isfinite(gauge.value):
            raise BadInput(
                f"{gauge.name}{dict(gauge.labels)} is {gauge.value}: only finite values are pushed"
            )
        by_name.setdefault(gauge.name, []).append(gauge)
    lines: list[str] = []
    for name, samples in by_name.items():
        text = next((g.help for g in samples if g.help), "")
        if text:
            lines.append(f"# HELP {name} {text.replace(chr(92), chr(92) * 2).replace(chr(10), ' ')}")
        lines.append(f"# TYPE {name} gauge")
        for g in samples:
            labels = ",".join(f'{k}="{_escape(str(v))}"' for k, v in sorted(g.labels.items()))
            lines.append(f"{name}{{{labels}}} {g.value!r}" if labels else f"{name} {g.value!r}")
    return "\n".join(lines) + "\n"


def group_path(job: str, grouping: Mapping[str, str]) -> str:
    """`/metrics/job@base64/<job>/<label>@base64/<value>...` (base64url, as the Pushgateway reads it)."""

    def encoded(value: str) -> str:
        # an empty value is `=` in base64url, which the Pushgateway reads as the empty string
        return base64.urlsafe_b64encode(value.encode()).decode() or "="

    if not job:
        raise BadInput("a push needs a job name")
    parts = [f"job@base64/{encoded(job)}"]
    for label, value in sorted(grouping.items()):
        if not _LABEL.match(label) or label == "job":
            raise BadInput(f"{label!r} cannot be a grouping label")
        parts.append(f"{label}@base64/{encoded(value)}")
    return "/metrics/" + "/".join(parts)


class Pushgateway:
    """The Pushgateway at `url` (http://host:9091): PUT replaces the group's metrics."""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    def push(self, job: str, grouping: Mapping[str, str], gauges: list[Gauge]) -> None:
        body = exposition(gauges)
        target = self.url + group_path(job, grouping)
        try:
            response = httpx.put(
                target,
                content=body.encode(),
                headers={"Content-Type": "text/plain; version=0.0.4"},
                timeout=self.timeout_s,
            )
        except httpx.TransportError as exc:
            raise Transient(f"pushing to the Pushgateway at {self.url}: {exc}") from exc
        if response.status_code >= 500:
            raise Transient(
                f"the Pushgateway at {self.url} answered {response.status_code}: {response.text[:300]}"
            )
        if response.status_code >= 400:
            raise BadInput(
                f"the Pushgateway at {self.url} refused the push ({response.status_code}): {response.text[:300]}"
            )

    def delete(self, job: str, grouping: Mapping[str, str]) -> None:
        try:
            httpx.delete(self.url + group_path(job, grouping), timeout=self.timeout_s).raise_for_status()
        except httpx.TransportError as exc:
            raise Transient(f"deleting a group on the Pushgateway at {self.url}: {exc}") from exc


@dataclass
class RecordingSink:
    """A MetricsSink that keeps every push (unit tests, and `--pushgateway-url=''`: nothing is sent)."""

    pushes: list[tuple[str, dict[str, str], list[Gauge]]] = field(default_factory=list)

    def push(self, job: str, grouping: Mapping[str, str], gauges: list[Gauge]) -> None:
        exposition(gauges)  # the same checks as a real push
        self.pushes.append((job, dict(grouping), list(gauges)))


def publish(
    url: str, job: str, grouping: Mapping[str, str], gauges: list[Gauge], sink: MetricsSink | None = None
) -> str:
    """Push `gauges` to the Pushgateway at `url` (`sink` instead, in tests; nowhere without a URL)
    and say where they went, for the step's summary."""
    if sink is None:
        sink = Pushgateway(url) if url else RecordingSink()
    sink.push(job, grouping, gauges)
    return f"pushed to {url}" if url else "not pushed (no --pushgateway-url)"

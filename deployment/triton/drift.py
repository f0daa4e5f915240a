"""The vision probe's figures and the population stability index (pure; no I/O).

What the live model predicts on the held-out probe images: the share of each class among the
predictions and the mean top-class probability. The same figures measured when a version went
live are stored on it (tags `probe.release.*`, and on the model with `probe.release.version`, for
a version moved live by hand). The population stability index compares the two class mixes:
PSI = sum over classes of (p_now - p_release) * ln(p_now / p_release); below 0.1 stable, 0.1-0.2
moderate, above 0.2 a significant shift (the VisionPredictionDrift alert's threshold).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

from mlops.errors import BadInput
from mlops.gates import Verdict, check, verdict
from mlops.pushgateway import Gauge

TAG_PREFIX = "probe.release."
JOB = "mlops-probe"
# a class never predicted would make ln(0): every share is floored at this before the PSI
EPSILON = 1e-4


@dataclass(frozen=True)
class VisionFigures:
    images: int
    class_shares: list[float]  # by class index, summing to 1
    mean_confidence: float
    version: str = ""  # release values: the version they were measured on

    def as_tags(self) -> dict[str, str]:
        return {
            f"{TAG_PREFIX}images": str(self.images),
            f"{TAG_PREFIX}class_shares": json.dumps([round(s, 6) for s in self.class_shares]),
            f"{TAG_PREFIX}mean_confidence": f"{self.mean_confidence:.6f}",
        }


def figures(probabilities: Sequence[Sequence[float]]) -> VisionFigures:
    """Class shares of the argmax and the mean top probability over the probe images."""
    if not probabilities:
        raise BadInput("no probe predictions: the probe set is empty")
    classes = len(probabilities[0])
    counts = [0] * classes
    confidence = 0.0
    for row in probabilities:
        if len(row) != classes:
            raise BadInput(f"prediction rows of {len(row)} and {classes} classes")
        best = max(range(classes), key=lambda i: row[i])
        counts[best] += 1
        confidence += float(row[best])
    n = len(probabilities)
    return VisionFigures(n, [c / n for c in counts], confidence / n)


def from_tags(tags: dict[str, str], version: str = "") -> VisionFigures | None:
    """Release values stored as tags (None: none recorded)."""
    if f"{TAG_PREFIX}class_shares" not in tags:
        return None
    try:
        shares = [float(s) for s in json.loads(tags[f"{TAG_PREFIX}class_shares"])]
        confidence = float(tags[f"{TAG_PREFIX}mean_confidence"])
        images = int(tags.get(f"{TAG_PREFIX}images", "0"))
    except (ValueError, TypeError, KeyError, json.JSONDecodeError) as exc:
        raise BadInput(f"the {TAG_PREFIX}* tags do not hold release values: {exc}") from exc
    if not shares or not math.isclose(sum(shares), 1.0, abs_tol=1e-3) or min(shares) < 0:
        raise BadInput(f"{TAG_PREFIX}class_shares {shares} are not shares summing to 1")
    return VisionFigures(images, shares, confidence, tags.get(f"{TAG_PREFIX}version", version))


def release_values(
    version_tags: dict[str, str], model_tags: dict[str, str], version: str
) -> VisionFigures | None:
    """The version's own release values, else the model's last recorded ones."""
    return from_tags(version_tags, version) or from_tags(model_tags)


def psi(current: Sequence[float], reference: Sequence[float], epsilon: float = EPSILON) -> float:
    """Population stability index of two distributions over the same classes."""
    if len(current) != len(reference):
        raise BadInput(f"PSI over {len(current)} and {len(reference)} classes: the class lists differ")
    total = 0.0
    for now, then in zip(current, reference, strict=True):
        now, then = max(now, epsilon), max(then, epsilon)
        total += (now - then) * math.log(now / then)
    return total


def drift_verdict(current: VisionFigures, release: VisionFigures, max_psi: float, max_drop: float) -> Verdict:
    """The vision drift alerts' rules on one run."""
    return verdict(
        [
            check("class-mix PSI", psi(current.class_shares, release.class_shares), "<=", max_psi),
            check("mean confidence drop", release.mean_confidence - current.mean_confidence, "<=", max_drop),
        ]
    )


def gauges(model: str, version: str, current: VisionFigures, release: VisionFigures | None) -> list[Gauge]:
    base = {"model": model, "version": version}
    out = [
        Gauge("mlops_vision_probe_images", float(current.images), base, "probe images classified"),
        Gauge(
            "mlops_vision_mean_confidence",
            current.mean_confidence,
            base,
            "mean top-class probability on the probe",
        ),
    ]
    if release is not None:
        out += [
            Gauge(
                "mlops_vision_psi",
                psi(current.class_shares, release.class_shares),
                base,
                "population stability index of the predicted classes against release time",
            ),
            Gauge(
                "mlops_vision_mean_confidence_release",
                release.mean_confidence,
                base,
                "mean top-class probability on the probe when the version went live",
            ),
        ]
    return out

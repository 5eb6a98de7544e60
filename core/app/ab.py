"""Comparing the two models of an A/B test on the device, with tests that say whether a
difference is more than chance.

Each model of the test keeps a tally of what its frames held (:class:`~core.pipeline.serving.
Tally`) beside its counts of frames and failures (:class:`~core.pipeline.serving.CallCosts`).
:func:`compare` reads both. Nothing is judged until each model has served ``min_frames``
frames. Then the candidate (B) loses to the serving model (A) where it is worse by more than
the configured margin *and* the difference is significant at :data:`ALPHA` (one-sided):

- **error rate** (frames whose call failed or whose outputs could not be decoded): a
  two-proportion z-test;
- **detection rate of each class** (detections per frame): counts taken as Poisson, a z-test
  on the difference of the two rates, for classes A detected at least :data:`MIN_DETECTIONS`
  times;
- **confidence**: the two histograms' Kolmogorov-Smirnov distance (the asymptotic p-value)
  with the drop of the mean confidence;
- **time per frame**: the p99 of each model's calls, compared with ``models.max_latency_ratio``
  (a ratio, not a test: both run on the same cores at the same time). Nothing is judged until
  each model has also made :data:`MIN_CALLS` calls.

The candidate wins when it loses on none. The report holds both models' figures and each
test's statistic, so the decision can be checked by hand
(docs/decisions/0036-ab-tests-split-evenly-and-judge-by-significance.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.pipeline.serving import CONFIDENCE_BINS, Serving

__all__ = ["ALPHA", "MIN_CALLS", "MIN_DETECTIONS", "ABRules", "compare", "summary"]

ALPHA = 0.01
"""The significance level of every test (one-sided)."""
MIN_DETECTIONS = 20
"""Detections of a class by the serving model below which its rate is not compared."""
MIN_CALLS = 50
"""Calls each model must have made before their times per frame are compared."""
_CENTRES = (np.arange(CONFIDENCE_BINS) + 0.5) / CONFIDENCE_BINS


@dataclass(frozen=True)
class ABRules:
    """The margins of :func:`compare` (``models.ab`` and ``models.max_latency_ratio``)."""

    min_frames: int
    max_error_rate_increase: float
    max_detection_drop: float
    max_confidence_drop: float
    max_latency_ratio: float


def summary(serving: Serving) -> dict[str, Any]:
    """One model's figures: frames, errors and error rate, detections per frame by class,
    mean confidence, time per frame p50 and p99 (ms), and how many calls they come from."""
    costs, tally = serving.costs, serving.tally
    frames, errors = costs.frames, costs.errors
    out: dict[str, Any] = {
        "version": serving.version,
        "frames": frames,
        "errors": errors,
        "error_rate": _round(errors / frames if frames else None),
    }
    if tally is None:
        return out
    detections, confidence = tally.snapshot()
    latency = np.array(list(costs.latency_s), np.float64)
    names = serving.model.class_names
    out["detections_per_frame"] = {
        name: _round(int(count) / frames if frames else None)
        for name, count in zip(names, detections, strict=True)
    }
    out["mean_confidence"] = _round(_mean_confidence(confidence))
    out["calls"] = int(latency.size)
    out["latency_p50_ms"] = _round(
        float(np.percentile(latency, 50)) * 1e3 if latency.size else None
    )
    out["latency_p99_ms"] = _round(
        float(np.percentile(latency, 99)) * 1e3 if latency.size else None
    )
    return out


def compare(a: Serving, b: Serving, rules: ABRules) -> dict[str, Any]:
    """``{"decision": "collecting" | "promote" | "reject", "reasons", "variants": {"a", "b"},
    "tests"}``: the candidate ``b`` against the serving ``a`` (the module docstring)."""
    variants = {"a": summary(a), "b": summary(b)}
    report: dict[str, Any] = {"decision": "collecting", "reasons": [], "variants": variants}
    na, nb = a.costs.frames, b.costs.frames
    if min(na, nb) < rules.min_frames:
        report["reasons"] = [f"{min(na, nb)} of {rules.min_frames} frames on the smaller side"]
        return report
    if a.tally is not None and b.tally is not None:
        calls = min(len(a.costs.latency_s), len(b.costs.latency_s))
        if calls < MIN_CALLS:
            report["reasons"] = [f"{calls} of {MIN_CALLS} calls on the smaller side"]
            return report
    tests: dict[str, Any] = {}
    reasons: list[str] = []
    tests["error_rate"] = _errors(a, b, rules, reasons)
    if a.tally is not None and b.tally is not None:
        tests["detection_rate"] = _detections(a, b, rules, reasons)
        tests["confidence"] = _confidence(a, b, rules, reasons)
        tests["latency"] = _latency(a, b, rules, reasons)
    report["tests"] = tests
    report["reasons"] = reasons
    report["decision"] = "reject" if reasons else "promote"
    return report


def _errors(a: Serving, b: Serving, rules: ABRules, reasons: list[str]) -> dict[str, Any]:
    na, nb = a.costs.frames, b.costs.frames
    ea, eb = a.costs.errors, b.costs.errors
    pa, pb = ea / na, eb / nb
    pooled = (ea + eb) / (na + nb)
    se = math.sqrt(pooled * (1 - pooled) * (1 / na + 1 / nb))
    z = (pb - pa) / se if se > 0 else 0.0
    p = _upper_tail(z)
    if pb - pa > rules.max_error_rate_increase and p < ALPHA:
        reasons.append(
            f"error rate {pb:.1%} against {pa:.1%} (z {z:.2f}, p {p:.2g}), more than "
            f"{rules.max_error_rate_increase:.1%} higher"
        )
    return {"z": _round(z), "p": _round(p, 6)}


def _detections(a: Serving, b: Serving, rules: ABRules, reasons: list[str]) -> dict[str, Any]:
    assert a.tally is not None and b.tally is not None
    na, nb = a.costs.frames, b.costs.frames
    da, db = a.tally.snapshot()[0], b.tally.snapshot()[0]
    out: dict[str, Any] = {}
    for name, ca, cb in zip(a.model.class_names, da, db, strict=True):
        if ca < MIN_DETECTIONS:
            continue
        ra, rb = ca / na, cb / nb
        z = (rb - ra) / math.sqrt(ca / na**2 + max(cb, 1) / nb**2)
        p = _upper_tail(-z)  # B lower than A
        drop = 1 - rb / ra
        out[name] = {"rate_a": _round(ra), "rate_b": _round(rb), "z": _round(z), "p": _round(p, 6)}
        if drop > rules.max_detection_drop and p < ALPHA:
            reasons.append(
                f"{name}: {rb:.3f} detections a frame against {ra:.3f} ({drop:.0%} fewer; "
                f"z {z:.2f}, p {p:.2g}), over {rules.max_detection_drop:.0%}"
            )
    return out


def _confidence(a: Serving, b: Serving, rules: ABRules, reasons: list[str]) -> dict[str, Any]:
    assert a.tally is not None and b.tally is not None
    ha, hb = a.tally.snapshot()[1], b.tally.snapshot()[1]
    ma, mb = int(ha.sum()), int(hb.sum())
    if not ma or not mb:
        return {"ks_d": None, "p": None}
    d = float(np.max(np.abs(np.cumsum(ha) / ma - np.cumsum(hb) / mb)))
    n = ma * mb / (ma + mb)
    p = min(1.0, 2 * math.exp(-2 * n * d * d))
    mean_a, mean_b = _mean_confidence(ha), _mean_confidence(hb)
    assert mean_a is not None and mean_b is not None
    if mean_a - mean_b > rules.max_confidence_drop and p < ALPHA:
        reasons.append(
            f"mean confidence {mean_b:.3f} against {mean_a:.3f} (KS distance {d:.3f}, p "
            f"{p:.2g}), more than {rules.max_confidence_drop} lower"
        )
    return {"ks_d": _round(d), "p": _round(p, 6)}


def _latency(a: Serving, b: Serving, rules: ABRules, reasons: list[str]) -> dict[str, Any]:
    pa, pb = a.costs.p99_s(MIN_CALLS), b.costs.p99_s(MIN_CALLS)
    if pa is None or pb is None:
        return {"p99_ratio": None}
    ratio = pb / pa
    if ratio > rules.max_latency_ratio:
        reasons.append(
            f"p99 time per frame {ratio:.2f} x the serving model's, over "
            f"models.max_latency_ratio {rules.max_latency_ratio}"
        )
    return {"p99_ratio": _round(ratio)}


def _mean_confidence(histogram: np.ndarray) -> float | None:
    total = int(histogram.sum())
    return float((histogram * _CENTRES).sum() / total) if total else None


def _upper_tail(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2))


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


DECISION_VALUES = {"collecting": 0, "promote": 1, "reject": -1}


class ABMetrics:
    """The A/B test's figures in a registry: ``edgeloop_ab_frames``, ``edgeloop_ab_error_rate``,
    ``edgeloop_ab_latency_p99_seconds``, ``edgeloop_ab_mean_confidence`` by ``variant`` (a or
    b) and ``model_version``, and ``edgeloop_ab_decision`` (0 collecting, 1 promote, -1
    reject)."""

    def __init__(self, registry: Any) -> None:
        labels = ("variant", "model_version")
        self.frames = registry.gauge("edgeloop_ab_frames", "Frames served in the A/B test", labels)
        self.error_rate = registry.gauge(
            "edgeloop_ab_error_rate", "Share of the A/B test's frames that failed", labels
        )
        self.p99 = registry.gauge(
            "edgeloop_ab_latency_p99_seconds",
            "p99 inference time per frame in the A/B test",
            labels,
        )
        self.confidence = registry.gauge(
            "edgeloop_ab_mean_confidence", "Mean detection confidence in the A/B test", labels
        )
        self.decision = registry.gauge(
            "edgeloop_ab_decision", "The A/B test's decision: 0 collecting, 1 promote, -1 reject"
        )

    def show(self, report: dict[str, Any]) -> None:
        for variant, figures in report["variants"].items():
            labels = {"variant": variant, "model_version": figures["version"]}
            self.frames.labels(**labels).set(figures["frames"])
            for gauge, key, scale in (
                (self.error_rate, "error_rate", 1.0),
                (self.p99, "latency_p99_ms", 1e-3),
                (self.confidence, "mean_confidence", 1.0),
            ):
                if figures.get(key) is not None:
                    gauge.labels(**labels).set(figures[key] * scale)
        self.decision.set(DECISION_VALUES[report["decision"]])


class ABTest:
    """One A/B test under way: the serving model (A), the candidate (B), the rules, and when
    its report is next due (on a change of decision, else every ``report_s``)."""

    def __init__(
        self, a: Serving, b: Serving, rules: ABRules, report_s: float, metrics: ABMetrics
    ) -> None:
        self.a, self.b, self.rules = a, b, rules
        self.report_s = report_s
        self.metrics = metrics
        self.decision = "collecting"
        self._next_report = 0.0
        a.keep_tally()
        b.keep_tally()

    def check(self, now: float) -> dict[str, Any] | None:
        """The comparison when a report is due (None otherwise); the metrics follow it."""
        report = compare(self.a, self.b, self.rules)
        self.metrics.show(report)
        changed = report["decision"] != self.decision
        self.decision = report["decision"]
        if not changed and now < self._next_report:
            return None
        self._next_report = now + self.report_s
        return report

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from openarc.metrics import HotHistogram

BUCKETS = (0.005, 0.01, 0.1, 1.0, 10.0)
VALUES = [0.001, 0.005, 0.0051, 0.05, 0.1, 0.5, 1.0, 3.0, 10.0, 99.0]


def test_hot_histogram_exposes_exactly_what_prometheus_client_would() -> None:
    reference_registry, hot_registry = CollectorRegistry(), CollectorRegistry()
    reference = Histogram("x_seconds", "doc", ["model_name"], buckets=BUCKETS, registry=reference_registry)
    hot = HotHistogram("x_seconds", "doc", "model_name", BUCKETS)
    hot_registry.register(hot)
    for model, values in (("a", VALUES), ("b", VALUES[:3])):
        for value in values:
            reference.labels(model).observe(value)
            hot.labels(model).observe(value)
    # prometheus_client adds a _created sample per series; the rest must match line for line.
    expected = [line for line in generate_latest(reference_registry).splitlines() if b"_created" not in line]
    assert generate_latest(hot_registry).splitlines() == expected

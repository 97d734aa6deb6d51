"""Prometheus metrics, named like vLLM's with an `openarc:` prefix so existing dashboards carry over.

Latencies and token counts are observed by the serving layer as requests finish; the state of the engine
(running and waiting sequences, KV-cache usage, worker restarts) is read from the replicas at scrape time.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from openarc.engine.engine import Engine

# How Prometheus spells a bucket bound ("+Inf", "0.005", "1e+06"); the library leaves it untyped.
_bound_label: Callable[[float], str] = floatToGoString
_LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0)
_REQUEST_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ["model_name"]
        self.time_to_first_token = Histogram(
            "openarc:time_to_first_token_seconds",
            "Time to the first generated token.",
            labels,
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.inter_token_latency = HotHistogram(
            "openarc:inter_token_latency_seconds",
            "Time between tokens as delivered (per token, averaged within a delivery).",
            "model_name",
            _LATENCY_BUCKETS,
        )
        self.registry.register(self.inter_token_latency)
        self.e2e_request_latency = Histogram(
            "openarc:e2e_request_latency_seconds",
            "Time from a request's start to its end.",
            labels,
            buckets=_REQUEST_BUCKETS,
            registry=self.registry,
        )
        self.prompt_tokens = Counter(
            "openarc:prompt_tokens", "Prompt tokens processed.", labels, registry=self.registry
        )
        self.generation_tokens = Counter(
            "openarc:generation_tokens", "Tokens generated.", labels, registry=self.registry
        )
        self.request_success = Counter(
            "openarc:request_success",
            "Engine requests ended, by finish reason (stop, length, abort, error).",
            [*labels, "finished_reason"],
            registry=self.registry,
        )
        self.http_responses = Counter(
            "openarc:http_responses", "HTTP responses by status code.", ["status"], registry=self.registry
        )

    def watch(self, engine: Engine) -> None:
        self.registry.register(EngineCollector(engine))


class EngineCollector(Collector):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        running = GaugeMetricFamily("openarc:num_requests_running", "Sequences in the engines.", labels=["model_name"])
        waiting = GaugeMetricFamily(
            "openarc:num_requests_waiting", "Requests queued in the workers.", labels=["model_name"]
        )
        kv_usage = GaugeMetricFamily(
            "openarc:kv_cache_usage_perc", "KV-cache usage of a replica (1 = full).", labels=["model_name", "replica"]
        )
        restarts = CounterMetricFamily(
            "openarc:worker_restarts", "Worker processes restarted after dying.", labels=["model_name", "replica"]
        )
        # With these, rate(step_seconds) is the share of wall time a replica's device computes, and
        # rate(step_sequences) / rate(steps) the mean batch. A restarted worker counts from zero (a counter reset).
        steps = CounterMetricFamily("openarc:engine_steps", "Engine steps run.", labels=["model_name", "replica"])
        step_seconds = CounterMetricFamily(
            "openarc:engine_step_seconds", "Time spent inside engine steps.", labels=["model_name", "replica"]
        )
        step_sequences = CounterMetricFamily(
            "openarc:engine_step_sequences",
            "Sequences carried by engine steps (summed over steps).",
            labels=["model_name", "replica"],
        )
        for model in self.engine.models.values():
            running.add_metric([model.id], sum(r.stats.active for r in model.replicas))
            waiting.add_metric([model.id], sum(r.stats.waiting for r in model.replicas))
            for replica in model.replicas:
                # GenAI reports percent; Prometheus convention (and vLLM's) is a 0..1 ratio.
                kv_usage.add_metric([model.id, replica.name], replica.stats.kv_cache_usage / 100)
                restarts.add_metric([model.id, replica.name], replica.restarts)
                steps.add_metric([model.id, replica.name], replica.stats.steps)
                step_seconds.add_metric([model.id, replica.name], replica.stats.step_seconds)
                step_sequences.add_metric([model.id, replica.name], replica.stats.step_sequences)
        yield from (running, waiting, kv_usage, restarts, steps, step_seconds, step_sequences)


class HotSeries:
    """One label value's bucket counts (not cumulative) and sum."""

    __slots__ = ("_bounds", "counts", "total")

    def __init__(self, bounds: list[float]) -> None:
        self._bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        # The first bound >= value: Prometheus buckets are "less than or equal".
        self.counts[bisect_left(self._bounds, value)] += 1
        self.total += value


class HotHistogram(Collector):
    """A histogram for the per-token path (observed at every delivery of every stream).

    prometheus_client's Histogram takes a lock for the sum and for a bucket and walks the bounds in Python on
    every observation; this one bisects and adds, and builds the same exposition only when scraped. It is
    used from the event loop alone, which is also where /metrics is rendered, so no lock is needed.
    """

    def __init__(self, name: str, documentation: str, label: str, buckets: Sequence[float]) -> None:
        self.name = name
        self.documentation = documentation
        self.label = label
        self._bounds = sorted(float(b) for b in buckets)
        self._series: dict[str, HotSeries] = {}

    def labels(self, value: str) -> HotSeries:
        series = self._series.get(value)
        if series is None:
            series = self._series[value] = HotSeries(self._bounds)
        return series

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=[self.label])
        for value, series in self._series.items():
            cumulative, buckets = 0, []
            for bound, count in zip([*self._bounds, float("inf")], series.counts, strict=True):
                cumulative += count
                buckets.append((_bound_label(bound), cumulative))
            family.add_metric([value], buckets, series.total)
        yield family

"""Metric families read at scrape time: each names a reading (a callable over counters the
code keeps anyway) and how Prometheus should see it. :class:`ReadingsCollector` turns them
into ``prometheus_client`` metrics in a registry of the caller's own, so several nodes in
one process (the party) never share one.

Label values come from fixed sets (reasons, outcomes, results, states, engine names the
owner configured); never a PeerID or a piece of text a peer sent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import CollectorRegistry

from node.engine.call_stats import LatencyBuckets

Labels: TypeAlias = tuple[str, ...]
Values: TypeAlias = Mapping[Labels, float]
"""Label values (in the family's label order) → the value; ``{(): v}`` without labels."""


def one(value: float) -> Values:
    """The reading of a family without labels."""
    return {(): value}


@dataclass(frozen=True, slots=True)
class Family:
    """A counter or gauge: ``read()`` gives every labelled value at scrape time."""

    name: str
    """The full name; a counter's ends in ``_total``."""
    help: str
    kind: Literal["counter", "gauge"]
    read: Callable[[], Values]
    labels: Labels = ()

    def metric(self, const: Mapping[str, str], *, empty: bool = False) -> Metric:
        names = [*const, *self.labels]
        family: CounterMetricFamily | GaugeMetricFamily
        if self.kind == "counter":
            family = CounterMetricFamily(self.name, self.help, labels=names)
        else:
            family = GaugeMetricFamily(self.name, self.help, labels=names)
        for values, value in ({} if empty else self.read()).items():
            family.add_metric([*const.values(), *values], value)
        return family


@dataclass(frozen=True, slots=True)
class Histogram:
    """A histogram: ``read()`` gives every labelled set of buckets at scrape time."""

    name: str
    help: str
    read: Callable[[], Mapping[Labels, LatencyBuckets]]
    labels: Labels = ()

    def metric(self, const: Mapping[str, str], *, empty: bool = False) -> Metric:
        family = HistogramMetricFamily(self.name, self.help, labels=[*const, *self.labels])
        for values, buckets in ({} if empty else self.read()).items():
            family.add_metric(
                [*const.values(), *values],
                [(_le(bound), float(count)) for bound, count in buckets.cumulative()],
                buckets.sum_s,
            )
        return family


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


class ReadingsCollector:
    """A ``prometheus_client`` collector over :class:`Family` and :class:`Histogram`
    readings; ``const`` labels go on every sample (e.g. ``character``)."""

    def __init__(
        self, families: Sequence[Family | Histogram], const: Mapping[str, str] | None = None
    ) -> None:
        self.families = tuple(families)
        self.const = dict(const or {})

    def collect(self) -> Iterable[Metric]:
        return [family.metric(self.const) for family in self.families]

    def describe(self) -> Iterable[Metric]:
        # The names only: registering must not read the counters.
        return [family.metric(self.const, empty=True) for family in self.families]


def metrics_registry(*collectors: ReadingsCollector) -> CollectorRegistry:
    """A registry of its own for one app's ``/metrics`` (never the global one)."""
    registry = CollectorRegistry(auto_describe=True)
    for collector in collectors:
        registry.register(collector)
    return registry

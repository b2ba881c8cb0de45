"""Reading a ``/metrics`` answer the way Prometheus does: with ``prometheus_client``'s own
text parser, then looking samples up by name and labels."""

from __future__ import annotations

from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

TEXT_FORMAT = CONTENT_TYPE_LATEST
"""The content type of the Prometheus text format the library writes."""


class Scrape:
    def __init__(self, text: str) -> None:
        self.families: dict[str, Metric] = {
            family.name: family for family in text_string_to_metric_families(text)
        }

    def type_of(self, family: str) -> str:
        """``counter``, ``gauge``, ``histogram``... of a family (a counter's name without
        ``_total``, as the parser names it)."""
        return str(self.families[family].type)

    def labels_of(self, family: str) -> set[str]:
        """Every label name on the family's samples."""
        return {name for sample in self.families[family].samples for name in sample.labels}

    def value(self, sample: str, **labels: str) -> float | None:
        """The value of the one sample called ``sample`` whose labels include ``labels``,
        or None if there is none."""
        found = [
            s.value
            for family in self.families.values()
            for s in family.samples
            if s.name == sample and labels.items() <= s.labels.items()
        ]
        assert len(found) <= 1, f"{sample} {labels} matches {len(found)} samples"
        return found[0] if found else None

    def total(self, sample: str, **labels: str) -> float:
        """The sum over every sample called ``sample`` whose labels include ``labels``."""
        return sum(
            s.value
            for family in self.families.values()
            for s in family.samples
            if s.name == sample and labels.items() <= s.labels.items()
        )


__all__ = ["TEXT_FORMAT", "Scrape"]

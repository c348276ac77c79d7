"""Read CloudWatch EMF documents back out of captured stdout, as CloudWatch would."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field


@dataclass
class EmfMetric:
    namespace: str
    dimensions: dict[str, str]
    name: str
    unit: str
    values: list[float] = field(default_factory=list)


def emf_documents(stdout: str) -> list[dict]:
    """Every JSON line that is an EMF document (Powertools' Logger prints JSON lines too)."""
    documents = []
    for line in stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            document = json.loads(line)
        except ValueError:
            continue
        if isinstance(document, dict) and "_aws" in document:
            documents.append(document)
    return documents


def emf_metrics(documents: list[dict]) -> list[EmfMetric]:
    """One entry per (namespace, dimension set, metric name) in each document, values always a list."""
    found = []
    for document in documents:
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for dimension_set in directive["Dimensions"]:
                dimensions = {key: document[key] for key in dimension_set}
                for metric in directive["Metrics"]:
                    value = document[metric["Name"]]
                    values = value if isinstance(value, list) else [value]
                    found.append(EmfMetric(directive["Namespace"], dimensions, metric["Name"], metric["Unit"], values))
    return found


def values_by(metrics: list[EmfMetric], dimension: str) -> dict[str, dict[str, list[float]]]:
    """{dimension value: {metric name: all values across documents}} for metrics with exactly that dimension."""
    out: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for metric in metrics:
        if set(metric.dimensions) == {dimension}:
            out[metric.dimensions[dimension]][metric.name].extend(metric.values)
    return {key: dict(value) for key, value in out.items()}

"""The Grafana dashboard (deploy/grafana) queries only metrics the services expose, and shows
every one of them; the Prometheus config scrapes each service's default metrics port."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from auditstream.config import ROLE_METRICS_PORTS
from auditstream.ops import metrics
from auditstream.ops.lag import PartitionLag
from auditstream.sinks.consumer import SinkStats
from auditstream.stream_jobs.anomaly import AnomalyStats
from auditstream.stream_jobs.detect import DetectStats
from auditstream.stream_jobs.normalizer import NormalizerStats

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "auditstream.json"
NAME = re.compile(r"\bauditstream_[a-z0-9_]+\b")
FROM_PROMETHEUS = {"up"}
"""Series Prometheus makes itself for each target."""


def _exposed() -> tuple[set[str], set[str]]:
    """Sample names and metric family names of every collector, each with a value in every
    label it has (a labelled family with no values exposes no samples)."""
    registry = CollectorRegistry()
    normalizer = NormalizerStats(
        normalized=5, dead_lettered=1, repeats=1, committed_batches=2, aborted_batches=1,
        reasons={"invalid_json": 1}, batch_count=2, batch_seconds=0.2,
    )  # fmt: skip
    sink = SinkStats(
        inserted=4, writes=1, write_seconds=0.1, failed_writes=1, failed_commits=1,
        dead_letter_reasons={"store_refused": 1},
    )  # fmt: skip
    detect = DetectStats(events=3, alerts=1, by_rule={"brute_force": 1}, unreadable=1)
    lag = metrics.LagSampler({}, [])
    lag._latest = [PartitionLag("g", "t", 0, 1, 3, 2)]
    metrics.register(metrics.normalizer_metrics(lambda: normalizer), registry)
    metrics.register(metrics.sink_metrics(lambda: [("audit_events", sink)]), registry)
    metrics.register(metrics.worker_metrics(detect, AnomalyStats()), registry)
    metrics.register(lag.metrics, registry)
    families = list(text_string_to_metric_families(generate_latest(registry).decode()))
    return {s.name for f in families for s in f.samples}, {f.name for f in families}


def _exprs(dashboard: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def test_every_metric_the_dashboard_queries_is_exposed() -> None:
    samples, _ = _exposed()
    exprs = _exprs(json.loads(DASHBOARD.read_text()))
    assert exprs
    queried = {name for expr in exprs for name in NAME.findall(expr)}
    assert queried - samples == set(), "the dashboard queries metrics no service exposes"
    for expr in exprs:  # anything else is a series Prometheus makes itself
        bare = {m.split("{")[0] for m in re.findall(r"\b[a-z_]+\{", expr)}
        assert bare <= samples | FROM_PROMETHEUS, expr


def test_the_dashboard_shows_every_exposed_metric() -> None:
    _, families = _exposed()
    queried = "\n".join(_exprs(json.loads(DASHBOARD.read_text())))
    assert {f for f in families if f not in queried} == set()


def test_prometheus_scrapes_each_service_on_its_default_port() -> None:
    config = (DEPLOY / "prometheus" / "prometheus.yml").read_text()
    for role, port in ROLE_METRICS_PORTS.items():
        assert f'["{role}:{port}"]' in config
        assert f"service: {role}" in config
    assert "job_name: auditstream" in config
    assert any('job="auditstream"' in e for e in _exprs(json.loads(DASHBOARD.read_text())))


def test_the_compose_monitoring_profile_mounts_files_that_exist() -> None:
    """docker-compose.yml's monitoring profile provisions the dashboard and both datasources
    from deploy/; a renamed file would leave Grafana empty without any error here."""
    import re

    compose = (DEPLOY.parent / "docker-compose.yml").read_text()
    mounted = set(re.findall(r"- \./(deploy/[^:]+):", compose))
    assert {
        "deploy/prometheus/prometheus.yml",
        "deploy/grafana/provisioning",
        "deploy/grafana/dashboards",
        "deploy/clickhouse/grafana-reader.sh",
    } <= mounted
    for path in mounted:
        assert (DEPLOY.parent / path).exists(), path
    datasources = DEPLOY / "grafana" / "provisioning" / "datasources"
    assert {p.name for p in datasources.iterdir()} >= {"prometheus.yml", "clickhouse.yml"}
    assert "readonly = 1" in (DEPLOY / "clickhouse" / "grafana-reader.sh").read_text()

"""Builds the stream worker: the app and the explicit list of agents it runs."""

from __future__ import annotations

import faust

from auditstream.config import Settings
from auditstream.detectors import config as detector_config
from auditstream.detectors.engine import DetectionEngine
from auditstream.detectors.registry import default_detectors
from auditstream.stream_jobs import anomaly, detect, normalizer
from auditstream.stream_jobs.app import Worker, create_app


def build_engine(settings: Settings) -> DetectionEngine:
    """Fails with ``DetectorConfigError`` on a bad detector config: before any consuming."""
    detectors = default_detectors()
    return DetectionEngine(detectors, detector_config.load(settings.detectors_config, detectors))


def build(settings: Settings) -> faust.App:
    engine = build_engine(settings)
    app = create_app(settings)
    normalizer.register(app, settings)
    detect.register(app, settings, engine)
    anomaly.register(app, settings)
    return app


def run(settings: Settings, loglevel: str = "warning") -> None:
    """Run the worker in the foreground until SIGINT / SIGTERM."""
    app = build(settings)
    worker = Worker(app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()

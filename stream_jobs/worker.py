"""Builds the stream worker: the app and the explicit list of agents it runs."""

from __future__ import annotations

import faust

from auditstream.config import Settings
from auditstream.stream_jobs import normalizer
from auditstream.stream_jobs.app import create_app


def build(settings: Settings) -> faust.App:
    app = create_app(settings)
    normalizer.register(app, settings)
    return app


def run(settings: Settings, loglevel: str = "warning") -> None:
    """Run the worker in the foreground until SIGINT / SIGTERM."""
    app = build(settings)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()

"""A detector-like Faust worker for recovery tests: run as ``python faust_probe.py worker``.

One agent reads the normalized topic in batches (``take_events``, as the detectors do), keeps
a count per key in a changelog table (state to recover after a restart) and appends every
(partition, offset) it processes to ``PROBE_OUT``: the test checks them against the topic.

``PROBE_WIDEN=1`` widens Faust's recovery window deterministically, without changing its
order of operations: the seek to committed offsets waits until records of the input topic
have been fetched into the agent's queue while it was pending (if the consumer fetches them
at all before the seek), and the agent takes its first batch only once flow control has
resumed after that seek. That resume clears the queues: with Faust's order the queued
records are lost (never processed, and skipped on the re-fetch as already read).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any, cast

import faust

from auditstream.config import Settings
from auditstream.stream_jobs.app import Worker, create_app
from auditstream.stream_jobs.faust_context import make_current

WIDEN_LIMIT_SECONDS = 30.0
"""The widened seek gives up waiting after this long (a safety net, never reached when the
consumer fetches the input before its seek; when it does not, there is nothing to wait for)."""


def build(settings: Settings, out: Path, widen: bool) -> faust.App:
    app = create_app(settings)
    topic = settings.topics.normalized
    source = app.topic(topic, key_serializer="raw", value_serializer="raw")
    table = app.Table("probe-state", default=int, partitions=settings.topics.partitions)
    seeked = asyncio.Event()
    if not widen:
        seeked.set()
    else:
        widen_seek(app, topic, seeked)

    async def probe(stream: faust.StreamT[bytes]) -> None:
        batches = cast(faust.Stream[bytes], stream).take_events
        async for batch in batches(20, within=0.05):
            await seeked.wait()
            lines = []
            for event in batch:
                message = event.message
                lines.append(f"{message.partition} {message.offset}\n")
                make_current(event)
                key = (message.key or b"").decode()
                table[key] = table[key] + 1
            with out.open("a") as f:
                f.writelines(lines)

    app.agent(source, name="probe")(probe)
    return app


def widen_seek(app: faust.App, topic: str, seeked: asyncio.Event) -> None:
    """Install a consumer whose seek to committed offsets waits, while any partition of
    ``topic`` is being fetched, until records of it wait in a stream queue."""
    base: Any = app.transport.Consumer

    done = asyncio.Event()  # the seek is done; ``seeked``: and flow resumed after it
    flow: Any = app.flow_control
    resume = flow.resume

    def resume_then_release_the_agent() -> None:
        resume()
        if done.is_set():
            seeked.set()

    flow.resume = resume_then_release_the_agent

    class Widened(base):  # type: ignore[misc,valid-type]
        async def perform_seek(self) -> None:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + WIDEN_LIMIT_SECONDS
            while loop.time() < deadline and self._fetching(topic) and not _queued(app):
                await asyncio.sleep(0.01)
            await super().perform_seek()
            done.set()

        def _fetching(self, name: str) -> bool:
            return any(tp.topic == name for tp in self._get_active_partitions())

    app.transport.Consumer = Widened


def _queued(app: faust.App) -> bool:
    queues: Any = app.flow_control._queues
    return any(queue.qsize() > 0 for queue in list(queues))


def main() -> None:
    settings = Settings.from_env()
    app = build(settings, Path(os.environ["PROBE_OUT"]), os.environ.get("PROBE_WIDEN") == "1")
    Worker(app, loglevel="warning", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()

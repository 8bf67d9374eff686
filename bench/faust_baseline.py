"""The stream framework's own ceiling: a bare Faust agent on the same topic, in the same run.

The worker's stages run as Faust agents. What an agent costs before it does any work of
ours (aiokafka fetching and decoding records, Faust's conductor, streams, acks, commits,
and for a relay its ``Topic.send`` bookkeeping and the producer) bounds what any stage of
ours can reach on this machine. Two modes, with the worker's own app settings
(``stream_jobs.app.create_app``) and the normalizer's batch size:

- ``consume``: ``take_events`` batches, nothing done per event (the detect agent's floor);
- ``relay``: every value ``Topic.send`` to a scratch topic, then a producer flush (the
  normalizer's floor: read one message, write one message).

Each runs in a child process (``python -m auditstream.bench.faust_baseline``) with a fresh
app id, so it reads the topic from its beginning in a new consumer group; it reports the
wall time from the first batch to the last event (and, for a relay, the flush) and the CPU
time it used meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from auditstream.bench.baselines import topic_size

MODES = ("consume", "relay")


@dataclass(frozen=True)
class FaustBaseline:
    mode: str
    topic: str
    events: int
    seconds: float
    cpu_seconds: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_us_per_event(self) -> float:
        return self.cpu_seconds * 1e6 / self.events if self.events else 0.0


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _run_child(topic: str, limit: int, mode: str, out: Path) -> None:
    """The child: one agent over ``topic`` until ``limit`` events, then SIGTERM to itself."""
    import faust

    from auditstream.config import Settings
    from auditstream.stream_jobs.app import Worker, create_app

    settings = Settings.from_env()
    app = create_app(settings)
    source = app.topic(topic, key_serializer="raw", value_serializer="raw")
    scratch = app.topic(
        f"{topic}.faust-relay",
        partitions=settings.topics.partitions,
        key_serializer="raw",
        value_serializer="raw",
    )
    conf = settings.normalizer
    relay = mode == "relay"
    progress: dict[str, Any] = {"count": 0, "wall": None, "cpu": None}

    async def declare() -> None:
        if relay:
            await scratch.maybe_declare()

    async def bare(stream: faust.StreamT[bytes]) -> None:
        batches = cast(faust.Stream[bytes], stream).take_events
        async for batch in batches(conf.batch_size, within=conf.batch_within_seconds):
            if progress["wall"] is None:
                progress["wall"], progress["cpu"] = time.perf_counter(), _cpu()
            for event in batch:
                progress["count"] += 1
                if relay:
                    await scratch.send(key=event.message.key, value=event.message.value)
            if progress["count"] >= limit and not out.exists():
                if relay:
                    await app.producer.flush()
                result = {
                    "events": progress["count"],
                    "seconds": time.perf_counter() - progress["wall"],
                    "cpu_seconds": _cpu() - progress["cpu"],
                }
                out.write_text(json.dumps(result))
                asyncio.get_running_loop().call_later(0.1, os.kill, os.getpid(), signal.SIGTERM)

    app.task(declare)
    app.agent(source, name="bare")(bare)
    Worker(app, loglevel="warning", quiet=True).execute_from_commandline()


def measure(
    bootstrap: str, topic: str, partitions: int, limit: int, mode: str, timeout: float = 300.0
) -> FaustBaseline:
    """Run the bare agent over (up to) ``limit`` events of ``topic`` in a child process."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: use one of {', '.join(MODES)}")
    wanted = min(topic_size(bootstrap, topic, partitions), limit)
    if wanted == 0:
        return FaustBaseline(mode, topic, 0, 0.0, 0.0)
    with tempfile.TemporaryDirectory(prefix="auditstream-bench-faust-") as home:
        out = Path(home) / "result.json"
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "AUDITSTREAM_HOME": home,
            "AUDITSTREAM_APP_ID": f"bench-faust-{mode}-{uuid.uuid4().hex[:8]}",
            "AUDITSTREAM_PARTITIONS": str(partitions),
            "PYTHONUNBUFFERED": "1",
        }
        command = [sys.executable, "-m", "auditstream.bench.faust_baseline"]
        args = ["--topic", topic, "--limit", str(wanted), "--mode", mode, "--out", str(out)]
        with (Path(home) / "child.log").open("wb") as log:
            proc = subprocess.Popen(
                [*command, *args], env=env, stdout=log, stderr=subprocess.STDOUT
            )
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if not out.exists():
            tail = (Path(home) / "child.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the bare Faust {mode} agent did not finish:\n{tail}")
        found = json.loads(out.read_text())
    return FaustBaseline(
        mode, topic, int(found["events"]), float(found["seconds"]), float(found["cpu_seconds"])
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--limit", type=int, required=True)
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    _run_child(args.topic, args.limit, args.mode, args.out)


if __name__ == "__main__":
    main()

"""``auditstream serve``: the audit-log HTTP API (``api/``).

Embedded store: the API runs in the process that owns the store. If a sink already serves
it, say where; if a sink runs without it, say how to get it; otherwise this command *is* the
owner: it runs the sink (ingestion included) with the API on a thread. With a ClickHouse
server (``AUDITSTREAM_CLICKHOUSE_DSN=http(s)://...``) the API runs on its own.
"""

from __future__ import annotations

import signal
import sys
from dataclasses import replace
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

console = Console(highlight=False)
err = Console(stderr=True, highlight=False)


@click.command()
@click.option(
    "--port",
    type=int,
    default=None,
    help="Port (default AUDITSTREAM_API_PORT or 8080; 0: any free one).",
)
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1: this host only).")
def serve(port: int | None, host: str | None) -> None:  # fmt: skip
    """Serve the audit-log API (OpenAPI docs at /docs); starts the sink with it if none runs."""
    from auditstream.api.server import ApiUnavailable, live_api
    from auditstream.cli.main import _settings, _stop_cleanly_until_running
    from auditstream.sinks import query
    from auditstream.sinks.store import StoreUnavailable

    settings = _settings()
    api = replace(settings.api, enabled=True)
    api = replace(api, port=api.port if port is None else port, host=host or api.host)
    settings = replace(settings, api=api)
    ch = settings.clickhouse
    if not ch.embedded:
        _standalone(settings)
        return
    running = live_api(settings)
    if running is not None:
        console.print(f"the audit-log API is served at {running['url']} (pid {running['pid']})")
        return
    owner = query.live_owner(ch)
    if owner is not None:
        err.print(
            f"the sink (pid {owner['pid']}) owns the embedded store but serves no API: restart "
            "it with AUDITSTREAM_API_PORT set, or stop it and run `auditstream serve`"
        )
        sys.exit(1)
    _stop_cleanly_until_running("serve")
    from auditstream.cli.main import _topics_when_kafka_is_up
    from auditstream.sinks import service

    console.print(f"starting the sink with the audit-log API on {api.host}:{api.port}")
    _topics_when_kafka_is_up(settings)
    try:
        service.run(settings, api_required=True)
    except (StoreUnavailable, ApiUnavailable) as exc:
        err.print("[red]error:[/red]", escape(str(exc)))
        sys.exit(1)


def _standalone(settings: Any) -> None:
    from auditstream.api.server import ApiServer, ApiUnavailable
    from auditstream.sinks import store
    from auditstream.sinks.query_server import SessionPool
    from auditstream.sinks.store import StoreUnavailable

    pool = SessionPool(lambda: store.open_analyst(settings.clickhouse))
    try:
        server = ApiServer(settings, pool.session)
    except ApiUnavailable as exc:
        err.print("[red]error:[/red]", escape(str(exc)))
        sys.exit(1)

    def stop(signum: int, frame: Any) -> None:
        server.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    console.print(f"audit-log API at {server.url} (docs: {server.url}/docs)")
    try:
        server.serve_forever()
    except (ApiUnavailable, StoreUnavailable) as exc:
        err.print("[red]error:[/red]", escape(str(exc)))
        sys.exit(1)
    finally:
        pool.close()

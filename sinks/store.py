"""Open the ClickHouse store named by the settings: chDB in-process, or a server."""

from __future__ import annotations

from typing import Any

import clickhouse_connect

from auditstream.config import ClickHouseSettings
from auditstream.sinks import tables


class StoreUnavailable(RuntimeError):
    """ClickHouse could not be opened; the message says why and what to do."""


def connect(settings: ClickHouseSettings, create: bool = True) -> Any:
    """A clickhouse-connect client with the database and tables in place."""
    path = settings.embedded_path
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
    try:
        client = clickhouse_connect.get_client(dsn=settings.dsn)
    except Exception as exc:
        text = str(exc)
        if "Cannot lock file" in text or "Another server instance" in text:
            raise StoreUnavailable(
                f"the embedded store {path} is open in another process (only one may open it). "
                "Run queries through `auditstream sql`, which asks the running sink, "
                "or stop the sink first."
            ) from exc
        raise StoreUnavailable(f"cannot open ClickHouse at {_redact(settings.dsn)}: {exc}") from exc
    if create:
        tables.ensure(client, settings.database, settings.retention_days)
        tables.ensure_alerts(client, settings.database, settings.alert_retention_days)
    client.database = settings.database
    return client


def _redact(dsn: str) -> str:
    if "@" in dsn and "://" in dsn:
        scheme, rest = dsn.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return dsn

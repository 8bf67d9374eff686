"""Open the ClickHouse store named by the settings: chDB in-process, or a server.

Three kinds of client, never shared:

* ``connect``: the **writer** (the sink). Creates the database and missing tables; never
  changes an existing table's TTL (that is ``auditstream retention set``).
* ``open_analyst``: an **analyst session**, a client of its own on the same store, with
  ClickHouse's ``readonly=1`` and result / memory / time limits in force for the session,
  set last so the session can change none of them. On chDB every client owns its own
  engine connection and session, and the engine runs them concurrently (measured: a
  60 s analyst query does not hold up the writer's inserts; ``bench/query_contention.py``).
* ``open_admin``: a plain session for the owner's own DDL (``retention set``).

A reader (``auditstream sql`` with no sink running) starts the embedded engine with
``readonly = 1`` and the limits as start-up settings, so no session of that process can
write, and it never creates or alters anything.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import clickhouse_connect

from auditstream.config import ClickHouseSettings
from auditstream.sinks import tables


class StoreUnavailable(RuntimeError):
    """ClickHouse could not be opened; the message says why and what to do."""


class StoreBusy(StoreUnavailable):
    """The embedded store is open in another process (only one may open it)."""


def _default_threads() -> int:
    return max(1, (os.cpu_count() or 2) // 2)


@dataclass(frozen=True)
class AnalystLimits:
    """What one analyst query may use. In force for the session, so a query can't raise them."""

    max_execution_time: int = 60
    """Seconds; the query then fails (``timeout_overflow_mode = throw``)."""
    max_result_rows: int = 1_000_000
    """The query server holds a result in the sink's memory: bounded by rows and bytes."""
    max_result_bytes: int = 512 << 20
    max_memory_usage: int = 2 << 30
    max_threads: int = field(default_factory=_default_threads)
    """Half the cores: ingestion keeps the rest while an analyst query runs."""

    def settings(self) -> dict[str, str]:
        """ClickHouse settings for the session, ``readonly = 1`` last (it freezes the rest)."""
        return {
            "max_execution_time": str(self.max_execution_time),
            "timeout_overflow_mode": "throw",
            "max_result_rows": str(self.max_result_rows),
            "max_result_bytes": str(self.max_result_bytes),
            "result_overflow_mode": "throw",
            "max_memory_usage": str(self.max_memory_usage),
            "max_threads": str(self.max_threads),
            "readonly": "1",
        }


def connect(settings: ClickHouseSettings, create: bool = True) -> Any:
    """The writer: a clickhouse-connect client with the database and tables in place."""
    path = settings.embedded_path
    if path is not None:
        private_dir(path)
    client = _open(settings)
    if create:
        tables.ensure(client, settings.database, settings.retention_days)
        tables.ensure_alerts(client, settings.database, settings.alert_retention_days)
    client.database = settings.database
    return client


def open_admin(settings: ClickHouseSettings) -> Any:
    """A session for the store owner's DDL; creates and changes nothing by itself."""
    client = _open(settings)
    client.database = settings.database
    return client


def open_analyst(
    settings: ClickHouseSettings, limits: AnalystLimits | None = None, *, owner: bool = True
) -> Any:
    """An analyst session: its own client, ``readonly = 1`` and ``limits`` for the session.

    ``owner``: this process owns the embedded store (the sink). Otherwise (a reader with no
    sink running) the embedded engine is opened read-only, and a store without our tables is
    refused with a message rather than created.
    """
    limits = limits or AnalystLimits()
    path = settings.embedded_path
    if path is not None and not owner:
        if not (path / "metadata").is_dir():
            raise StoreUnavailable(
                f"there is no store at {path} yet: start the sink (`auditstream sink`) "
                "once to create it"
            )
        # The whole engine of this process is read-only, limits included (start-up settings).
        client = _open(settings, chdb_options=limits.settings())
    else:
        client = _open(settings, autogenerate_session_id=False)
    try:
        if not owner:
            _require_tables(client, settings)
        for key, value in analyst_settings(_server_settings(client), limits).items():
            client.set_client_setting(key, value)
        _check_read_only(client)
        client.database = settings.database
    except BaseException:
        client.close()
        raise
    return client


def analyst_settings(server: Mapping[str, Any], limits: AnalystLimits) -> dict[str, str]:
    """The session settings to send: all of ``limits``, but none the server has frozen.

    ``server`` maps a setting name to clickhouse-connect's ``SettingDef`` (``value``,
    ``readonly``) for this user. A server user with a read-only profile has its settings
    frozen: its profile then governs (``docs/running-on-servers.md``), and sending them
    would fail. A user that may change settings gets ``readonly = 1`` from us.
    """
    out: dict[str, str] = {}
    for key, value in limits.settings().items():
        known = server.get(key)
        if known is not None and int(getattr(known, "readonly", 0)):
            continue
        out[key] = value
    return out


def _server_settings(client: Any) -> Mapping[str, Any]:
    return getattr(client, "server_settings", None) or {}


def _check_read_only(client: Any) -> None:
    """The session must be read-only now, whoever set it (us or the server's profile)."""
    level = str(client.command("SELECT getSetting('readonly')")).strip()
    if level != "1":
        client.close()
        raise StoreUnavailable(
            f"the analyst session is not read-only (readonly = {level}): give the ClickHouse "
            "user a profile with readonly = 1, or let it change settings"
        )


def _require_tables(client: Any, settings: ClickHouseSettings) -> None:
    found = client.command(
        "SELECT count() FROM system.tables WHERE database = {db:String} AND name = {t:String}",
        parameters={"db": settings.database, "t": tables.EVENTS_TABLE},
    )
    if int(str(found).strip() or 0) == 0:
        raise StoreUnavailable(
            f"the store has no `{settings.database}`.`{tables.EVENTS_TABLE}` table yet: "
            "start the sink (`auditstream sink`) once to create it; readers never create tables"
        )


_BUSY = ("Cannot lock file", "Another server instance", "Error initializing EmbeddedServer")
"""What chDB says when another process holds the embedded store (the last: while that
process is still starting it)."""


def _open(settings: ClickHouseSettings, **options: Any) -> Any:
    path = settings.embedded_path
    try:
        if path is not None:
            chdb_options = options.pop("chdb_options", None)
            return clickhouse_connect.get_client(
                dsn=settings.dsn, **({"chdb_options": chdb_options} if chdb_options else {})
            )
        if settings.password is not None:  # from a secret file, not the DSN
            options["password"] = settings.password
        return clickhouse_connect.get_client(dsn=settings.dsn, **options)
    except Exception as exc:
        text = str(exc)
        if path is not None and any(sign in text for sign in _BUSY):
            raise StoreBusy(
                f"the embedded store {path} is open in another process (only one may open it). "
                "Run queries through `auditstream sql`, which asks the running sink, "
                "or stop the sink first."
            ) from exc
        raise StoreUnavailable(f"cannot open ClickHouse at {_redact(settings.dsn)}: {exc}") from exc


def private_dir(path: Path) -> None:
    """Create ``path`` (and parents we create) as 0700, and make an existing one 0700."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def _redact(dsn: str) -> str:
    if "@" in dsn and "://" in dsn:
        scheme, rest = dsn.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return dsn

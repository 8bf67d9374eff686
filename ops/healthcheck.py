"""The container healthcheck: every service recorded under ``AUDITSTREAM_HOME/services``
(one per container) answers ``/healthz`` with 200. ``python -m auditstream.ops.healthcheck``
exits 0 if so, else 1 with one line saying which did not."""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

from auditstream.config import ConfigError, Settings
from auditstream.ops import health
from auditstream.pipeline import ROLES


def check(settings: Settings, timeout: float = 3.0) -> str | None:
    """None when healthy, else why not."""
    records = [r for role in ROLES if (r := health.read_record(settings, role)) is not None]
    if not records:
        return "no service is running (no record in AUDITSTREAM_HOME/services)"
    for record in records:
        if not record.get("metrics"):
            continue  # its metrics port is off: alive is all we know
        try:
            url = str(record["metrics"]) + "/healthz"
            with urllib.request.urlopen(url, timeout=timeout):  # noqa: S310 - loopback
                pass
        except (urllib.error.URLError, OSError) as exc:
            return f"{record['role']}: {getattr(exc, 'reason', exc)}"
    return None


def main() -> None:
    try:
        why = check(Settings.from_env())
    except ConfigError as exc:
        why = f"configuration error: {exc}"
    if why:
        print(why, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()

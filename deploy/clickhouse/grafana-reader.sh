#!/bin/bash
# Run once by the ClickHouse image on an empty data volume (/docker-entrypoint-initdb.d):
# a read-only user for Grafana's ClickHouse datasource. It can SELECT the audit tables and
# nothing else (readonly = 1 also refuses settings changes and temporary tables), so a
# dashboard can never write, alter or drop what the sink stored.
set -euo pipefail
password="${GRAFANA_CLICKHOUSE_PASSWORD:-}"
if [ -z "$password" ]; then
  echo "GRAFANA_CLICKHOUSE_PASSWORD not set: no read-only Grafana user created"
  exit 0
fi
case "$password" in *"'"*|*"\\"*) echo "GRAFANA_CLICKHOUSE_PASSWORD must not contain ' or \\" >&2; exit 1;; esac
clickhouse client --user "${CLICKHOUSE_USER}" --password "${CLICKHOUSE_PASSWORD}" --multiquery <<SQL
CREATE USER IF NOT EXISTS grafana IDENTIFIED WITH sha256_password BY '${password}'
  SETTINGS readonly = 1;
GRANT SELECT ON auditstream.* TO grafana;
SQL

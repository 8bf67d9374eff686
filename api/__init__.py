"""The audit-log HTTP API: tenant-scoped tokens, events, timelines, analytics, exports."""

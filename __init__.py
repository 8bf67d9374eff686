"""auditstream: a streaming pipeline for audit and activity logs with anomaly detection."""

__version__ = "0.1.0"

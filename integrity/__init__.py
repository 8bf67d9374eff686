"""Integrity: proving the log is complete (reconcile) and unaltered."""

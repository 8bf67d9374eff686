"""Running the pipeline in production: supervision, status, metrics, health, logs, dead letters."""

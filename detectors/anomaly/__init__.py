"""Learned anomalies: an IsolationForest over per-actor activity windows.

- ``features``: the window definition (one hour of one actor's events, by event time) and the
  feature vector; one definition, used by training (SQL) and scoring (stream).
- ``training``: audit_events in ClickHouse -> window summaries -> IsolationForest -> model.
- ``model``: the versioned model file (header + integrity digest + estimator).
- ``explain``: which features were unusual, and by how much, against the training windows.
- ``windows``: the per-actor window state machine the stream agent keeps in a Faust table.
- ``scoring``: closed windows -> scores -> explained ``anomalous_activity`` alerts.

The Faust glue is ``stream_jobs/anomaly.py``; the CLI is ``auditstream model``.
"""

"""``auditstream bench e2e``: the whole pipeline on this machine, measured.

One module per job: ``load`` (rate-controlled events with injected detection triggers),
``latency`` (percentiles, alert matching), ``procstats`` (CPU and RSS from /proc), ``lag``
(consumer-group lag), ``baselines`` (a bare consume loop, a direct batched insert),
``report`` (the table and the JSON) and ``e2e`` (the run that wires them together).
"""

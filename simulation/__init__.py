"""A seeded simulator of multi-tenant SaaS audit traffic, with labelled attacks.

One module, one job:

- ``timeline``: the time model (below);
- ``org``: tenants, their people (roles, time zones, working hours, usual places, devices
  and addresses), night-shift workers;
- ``registry``: each tenant's entities (projects, tasks, time entries, invoices ...), so
  changes carry real before / after values;
- ``activity``: benign daily work, sign-ins and sign-outs, cascades;
- ``scenarios``: attacks and benign look-alikes, each with its ground-truth ``Label``;
- ``plan``: all of the above merged into one stream in event-time order;
- ``runner``: rate-controlled emission through the SDK, labels written as JSONL;
- ``metrics`` and ``evaluate``: alerts matched to labels; precision, recall, latency.

**Time model.** Detectors learn from *event time* (``occurred_at``), never from the wall
clock. A run simulates a timeline of ``history_days + attack_days`` days that ends at the
anchor ``end`` (by default the start of the current minute, so no event is in the future):
the history lets the learned baselines fill up (an off-hours sign-in is only scored after 20
sign-ins of the actor, a new location after 3); the attacks and look-alikes all fall in the
last ``attack_days``. Events are emitted in event-time order, as fast as ``rate`` allows, so
weeks of event time pass in a minute of wall time. Detection latency is measured in wall
time: from the moment the SDK accepted the triggering event to the alert on the alert topic.
The same seed and anchor give the same events, ids included.

Addresses come from the documentation ranges (RFC 5737, RFC 3849), which IP geolocation
never places: places come from the ``location`` the simulator sends with each sign-in, as a
producer that knows where its users are does, so results do not depend on the DB-IP build.
"""

"""Source adapters: real logs (sshd, Okta, GitHub, Google Workspace, CloudTrail) -> schema v1.

The contract, once for every adapter: ``parse(text, options) -> Parsed``, where

- ``text`` is the whole input as the vendor writes it (syslog lines; JSON Lines, a JSON
  array or the vendor's envelope such as CloudTrail's ``{"Records": [...]}``);
- every record the adapter understands becomes the keyword fields of one
  ``AuditProducer.emit(**fields)`` call (``Parsed.events``): actor, action, outcome, IP, user
  agent and location when the source has them, the vendor's own names in ``metadata``;
- the event id is derived from the record (``base.source_event_id``): ingesting one file twice
  gives the same ids, so the normalizer and the sink drop the repeats;
- a record it does not map is counted in ``Parsed.skipped`` by reason, never an exception.

Adapters are pure (no I/O, no clock: a year-less syslog timestamp takes its year from
``options.now``). ``FORMATS`` is the explicit list; the mapping tables are in docs/adapters.md.
"""

from __future__ import annotations

from auditstream.sources.base import Options, Parsed, Parser
from auditstream.sources.cloudtrail import parse as parse_cloudtrail
from auditstream.sources.github import parse as parse_github
from auditstream.sources.google import parse as parse_google
from auditstream.sources.okta import parse as parse_okta
from auditstream.sources.syslog import parse as parse_syslog

FORMATS: dict[str, Parser] = {
    "sshd": parse_syslog,
    "okta": parse_okta,
    "github": parse_github,
    "google-login": parse_google,
    "cloudtrail": parse_cloudtrail,
}

__all__ = ["FORMATS", "Options", "Parsed", "Parser"]

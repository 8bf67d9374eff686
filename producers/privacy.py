"""What leaves the process: drop or hash IP addresses, redact named metadata keys.

Applied to the validated, JSON-ready event document, after validation and before encoding,
on both validation routes. Never mutates the caller's objects: what it changes, it copies.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from auditstream.producers.config import IpPolicy, ProducerConfig
from auditstream.producers.errors import InvalidEvent
from auditstream.schemas.event import MAX_METADATA_KEYS

REDACTED = "[REDACTED]"
IP_HASH_KEY = "ip_hash"


class Privacy:
    def __init__(self, ip_policy: IpPolicy, ip_hash_key: str | None, redact: frozenset[str]):
        self._ip_policy = ip_policy
        self._key = (ip_hash_key or "").encode()
        self._redact = frozenset(k.lower() for k in redact)

    @classmethod
    def from_config(cls, config: ProducerConfig) -> Privacy | None:
        """None when there is nothing to do (the common case costs nothing then)."""
        if config.ip_policy is IpPolicy.KEEP and not config.redact_keys:
            return None
        return cls(config.ip_policy, config.ip_hash_key, config.redact_keys)

    def ip_hash(self, ip: str) -> str:
        """Keyed, so the 2^32 IPv4 addresses can't simply be tried; same IP, same hash."""
        return hmac.new(self._key, ip.encode(), hashlib.sha256).hexdigest()[:32]

    def apply(self, doc: dict[str, Any]) -> dict[str, Any]:
        """``doc`` with the policy applied (a shallow copy where anything changed)."""
        metadata = doc.get("metadata") or {}
        changed_metadata = False
        if self._redact:
            redacted = _redact(metadata, self._redact)
            changed_metadata = redacted is not metadata
            metadata = redacted
            changes = doc.get("changes") or []
            if any(c["field"].lower() in self._redact for c in changes):
                doc = {**doc, "changes": [self._redact_change(c) for c in changes]}
        if self._ip_policy is not IpPolicy.KEEP and "ip" in doc:
            ip = doc["ip"]
            doc = {k: v for k, v in doc.items() if k != "ip"}
            if self._ip_policy is IpPolicy.HASH:
                if IP_HASH_KEY not in metadata and len(metadata) >= MAX_METADATA_KEYS:
                    raise InvalidEvent.one(
                        "metadata",
                        f"ip_policy='hash' adds metadata.{IP_HASH_KEY}: keep metadata to "
                        f"{MAX_METADATA_KEYS - 1} keys",
                    )
                metadata = {**metadata, IP_HASH_KEY: self.ip_hash(ip)}
                changed_metadata = True
        if changed_metadata:
            doc = {**doc, "metadata": metadata}
        return doc

    def _redact_change(self, change: dict[str, Any]) -> dict[str, Any]:
        if change["field"].lower() not in self._redact:
            return change
        out = {"field": change["field"]}
        for side in ("old", "new"):
            if side in change:
                out[side] = REDACTED
        return out


def _redact(value: Any, keys: frozenset[str]) -> Any:
    """``value`` with every dict entry named in ``keys`` replaced; the same object if none."""
    if isinstance(value, dict):
        out: dict[Any, Any] | None = None
        for k, v in value.items():
            new = REDACTED if isinstance(k, str) and k.lower() in keys else _redact(v, keys)
            if new is not v and out is None:
                out = dict(value)
            if out is not None:
                out[k] = new
        return value if out is None else out
    if isinstance(value, list | tuple):
        items = [_redact(v, keys) for v in value]
        if any(a is not b for a, b in zip(items, value, strict=True)):
            return items
        return value
    return value

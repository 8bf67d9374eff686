"""Tenant-scoped API tokens, hashed at rest.

A token reads ``ast_<id>_<secret>``: ``id`` (12 hex characters) names the record, ``secret``
is 32 random bytes. Only the SHA-256 of the whole token is stored, in
``AUDITSTREAM_HOME/api-tokens.json`` (mode 0600, replaced atomically under a lock); the
token itself is shown once, by ``auditstream tokens create``.

Why a file and not a table in the store: with the embedded store only the running sink can
write it, and tokens must be manageable while no sink runs (and before the first one);
with a ClickHouse server, API replicas read the same file (mount it as a secret), and the
store's users never see token hashes. The API re-reads the file when it changes, so a
revocation takes effect on the next request.

**Viewer tokens** (``asv_...``) are for a viewer embedded in a product: a token with
``admin`` mints one (``POST /v1/viewer-tokens``) for its own tenant, with at most its own
read / export scopes, for minutes to a day. They are not stored: the payload (tenant,
scopes, expiry, the minting token's id) is signed with HMAC-SHA-256 under a secret kept
beside the token file (``api-secret``, 0600, made on first use), and one is refused once it
expires or once the token that minted it is revoked.

Permissions are scopes: ``audit_log:read`` (events, timelines, analytics),
``audit_log:export`` (exports), ``admin`` (the tenant's settings). A role caps the scopes a
token may hold: ``member`` reads, ``admin`` also exports, ``owner`` may hold all three.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from auditstream.schemas.values import check_identifier

TOKENS_FILE = "api-tokens.json"
SECRET_BYTES = 32
"""The viewer tokens' signing key: exactly this long, or it is refused."""
SECRET_FILE = "api-secret"  # noqa: S105 (a file name)
PREFIX = "ast_"
VIEWER_PREFIX = "asv_"
VIEWER_MAX = timedelta(days=1)
_TOKEN = re.compile(r"^ast_([0-9a-f]{12})_([A-Za-z0-9_-]{20,})$")


class Scope(StrEnum):
    READ = "audit_log:read"
    EXPORT = "audit_log:export"
    ADMIN = "admin"


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"


ROLE_SCOPES: dict[Role, frozenset[Scope]] = {
    Role.MEMBER: frozenset({Scope.READ}),
    Role.ADMIN: frozenset({Scope.READ, Scope.EXPORT}),
    Role.OWNER: frozenset({Scope.READ, Scope.EXPORT, Scope.ADMIN}),
}


class TokenError(ValueError):
    """A token request that cannot be honoured; the message says why."""


@dataclass(frozen=True)
class TokenRecord:
    id: str
    tenant: str
    scopes: tuple[str, ...]
    role: str
    created_at: str
    expires_at: str | None
    sha256: str
    name: str = ""
    revoked_at: str | None = None

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and datetime.fromisoformat(self.expires_at) <= now

    def active(self, now: datetime) -> bool:
        return self.revoked_at is None and not self.expired(now)

    def public(self) -> dict[str, Any]:
        """Everything but the hash."""
        doc = asdict(self)
        doc.pop("sha256")
        doc["scopes"] = list(self.scopes)
        return doc


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_scopes(text: str) -> tuple[Scope, ...]:
    out: list[Scope] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            out.append(Scope(part))
        except ValueError:
            known = ", ".join(s.value for s in Scope)
            raise TokenError(f"unknown scope {part!r}; use {known}") from None
    if not out:
        raise TokenError("give at least one scope (audit_log:read)")
    return tuple(dict.fromkeys(out))


_DURATION = re.compile(r"^(\d+)\s*([hdw])$")


def parse_expiry(text: str | None, now: datetime | None = None) -> datetime | None:
    """``30d``, ``12h``, ``2w``, an ISO date or date-time (UTC if no offset), or None."""
    if text is None or text.strip() in ("", "never"):
        return None
    now = now or _now()
    match = _DURATION.match(text.strip().lower())
    if match:
        n, unit = int(match.group(1)), match.group(2)
        hours = {"h": 1, "d": 24, "w": 24 * 7}[unit]
        return now + timedelta(hours=n * hours)
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise TokenError(
            f"--expires {text!r}: use 30d, 12h, 2w or an ISO date such as 2027-01-31"
        ) from None
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    if value <= now:
        raise TokenError(f"--expires {text!r} is in the past")
    return value


class TokenStore:
    """The token file. Safe for several processes (an exclusive lock around each change)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cache: tuple[int, int, dict[str, TokenRecord]] | None = None

    @classmethod
    def in_home(cls, home: Path) -> TokenStore:
        return cls(home / TOKENS_FILE)

    # -- reading ---------------------------------------------------------------------------
    def _read(self) -> dict[str, TokenRecord]:
        try:
            doc = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise TokenError(f"{self.path} is not valid JSON: {exc}") from None
        records = {}
        for item in doc.get("tokens", []):
            record = TokenRecord(**{**item, "scopes": tuple(item["scopes"])})
            records[record.id] = record
        return records

    def records(self) -> dict[str, TokenRecord]:
        """All records, re-read when the file changed since the last call."""
        try:
            st = self.path.stat()
            key = (st.st_mtime_ns, st.st_ino)  # replaced atomically: a new inode each time
        except FileNotFoundError:
            return {}
        if self._cache is None or self._cache[:2] != key:
            self._cache = (key[0], key[1], self._read())
        return self._cache[2]

    def verify(self, token: str, now: datetime | None = None) -> TokenRecord | None:
        """The active record for ``token``, or None (unknown, wrong secret, revoked, expired)."""
        if token.strip().startswith(VIEWER_PREFIX):
            return self._verify_viewer(token.strip(), now or _now())
        match = _TOKEN.match(token.strip())
        if match is None:
            return None
        record = self.records().get(match.group(1))
        if record is None or not hmac.compare_digest(record.sha256, digest(token.strip())):
            return None
        return record if record.active(now or _now()) else None

    # -- viewer tokens -----------------------------------------------------------------------
    def _secret(self, create: bool) -> bytes | None:
        """The viewer tokens' signing key (32 random bytes, 0600). Written whole to a temp file
        and linked into place, so no reader ever sees it half-written; a file of the wrong size
        (empty, cut short) signs and accepts nothing."""
        path = self.path.with_name(SECRET_FILE)
        try:
            secret = path.read_bytes()
        except FileNotFoundError:
            if not create:
                return None
        else:
            return secret if len(secret) == SECRET_BYTES else None
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(secrets.token_bytes(SECRET_BYTES))
                fh.flush()
                os.fsync(fh.fileno())
            with contextlib.suppress(FileExistsError):  # another process linked one first
                os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        secret = path.read_bytes()
        return secret if len(secret) == SECRET_BYTES else None

    def mint_viewer(
        self, parent: TokenRecord, scopes: tuple[Scope, ...], ttl: timedelta,
        now: datetime | None = None,
    ) -> tuple[str, datetime]:  # fmt: skip
        """A short-lived token for ``parent``'s tenant with ``scopes`` (read / export, each
        held by ``parent``), valid for ``ttl`` (at most a day)."""
        now = now or _now()
        if not timedelta(0) < ttl <= VIEWER_MAX:
            raise TokenError("a viewer token lives between a second and a day")
        allowed = {Scope.READ.value, Scope.EXPORT.value} & set(parent.scopes)
        beyond = [s.value for s in scopes if s.value not in allowed]
        if beyond or not scopes:
            raise TokenError(
                f"a viewer token may hold {', '.join(sorted(allowed)) or 'nothing'} "
                f"(read / export scopes of the token that mints it), not {', '.join(beyond)}"
            )
        expires = now + ttl
        secret = self._secret(create=True)
        if secret is None:
            raise TokenError(
                f"the viewer-token key {self.path.with_name(SECRET_FILE)} is damaged (not "
                f"{SECRET_BYTES} bytes): remove it to make a new one (viewer tokens minted "
                "with it stop working)"
            )
        payload = json.dumps(
            [1, parent.tenant, sorted(s.value for s in scopes),
             int(expires.timestamp() * 1000), parent.id],
            separators=(",", ":"),
        ).encode()  # fmt: skip
        body = base64.urlsafe_b64encode(payload).decode().rstrip("=")
        mac = hmac.new(secret, body.encode(), hashlib.sha256).digest()
        signature = base64.urlsafe_b64encode(mac).decode().rstrip("=")
        return f"{VIEWER_PREFIX}{body}.{signature}", expires

    def _verify_viewer(self, token: str, now: datetime) -> TokenRecord | None:
        secret = self._secret(create=False)
        body, _, signature = token.removeprefix(VIEWER_PREFIX).partition(".")
        if secret is None or not body or not signature:
            return None
        mac = hmac.new(secret, body.encode(), hashlib.sha256).digest()
        expected = base64.urlsafe_b64encode(mac)
        if not hmac.compare_digest(expected.rstrip(b"="), signature.encode("utf-8", "replace")):
            return None
        try:
            version, tenant, scopes, expires_ms, parent_id = json.loads(
                base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            )
            expires = datetime.fromtimestamp(int(expires_ms) / 1000, UTC)
        except (ValueError, TypeError, OverflowError, OSError):
            return None
        parent = self.records().get(str(parent_id))
        if version != 1 or expires <= now or parent is None or not parent.active(now):
            return None
        # What the signature covers is also what minting allows: never trust it further.
        allowed = {Scope.READ.value, Scope.EXPORT.value} & set(parent.scopes)
        if parent.tenant != tenant or expires > now + VIEWER_MAX:
            return None
        if not isinstance(scopes, list) or not scopes or not set(map(str, scopes)) <= allowed:
            return None
        return TokenRecord(
            id=f"viewer-{parent.id}", tenant=str(tenant), scopes=tuple(scopes),
            role="viewer", created_at=_iso(now), expires_at=_iso(expires), sha256="",
            name=f"viewer minted by {parent.id}",
        )  # fmt: skip

    # -- changing --------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, TokenRecord]]:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock_path = self.path.with_suffix(".lock")
        fd = os.open(lock_path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            records = self._read()
            yield records
            self._write(records)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _write(self, records: dict[str, TokenRecord]) -> None:
        doc = {"tokens": [asdict(r) for r in records.values()]}
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(doc, fh, indent=1)
        os.chmod(tmp, 0o600)
        tmp.replace(self.path)
        self._cache = None

    def create(
        self,
        tenant: str,
        scopes: tuple[Scope, ...],
        role: Role = Role.ADMIN,
        expires_at: datetime | None = None,
        name: str = "",
    ) -> tuple[str, TokenRecord]:
        """A new token (shown once) and its record."""
        try:
            tenant = check_identifier(tenant.strip())
        except ValueError as exc:
            raise TokenError(f"--tenant: {exc}") from None
        if not tenant:
            raise TokenError("--tenant is required")
        beyond = [s.value for s in scopes if s not in ROLE_SCOPES[role]]
        if beyond:
            raise TokenError(
                f"role {role.value} cannot hold {', '.join(beyond)}; "
                f"it may hold {', '.join(sorted(s.value for s in ROLE_SCOPES[role]))}"
            )
        token_id = secrets.token_hex(6)
        token = f"{PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
        record = TokenRecord(
            id=token_id,
            tenant=tenant,
            scopes=tuple(s.value for s in scopes),
            role=role.value,
            created_at=_iso(_now()),
            expires_at=None if expires_at is None else _iso(expires_at),
            sha256=digest(token),
            name=name,
        )
        with self._locked() as records:
            records[token_id] = record
        return token, record

    def revoke(self, token_id: str) -> TokenRecord:
        token_id = token_id.strip()
        match = _TOKEN.match(token_id)
        if match:  # the whole token pasted
            token_id = match.group(1)
        with self._locked() as records:
            record = records.get(token_id)
            if record is None:
                raise TokenError(f"no token with id {token_id!r} (see `auditstream tokens list`)")
            if record.revoked_at is None:
                record = replace(record, revoked_at=_iso(_now()))
                records[token_id] = record
        return record

    def entries(self, tenant: str | None = None) -> list[TokenRecord]:
        out = [r for r in self._read().values() if tenant is None or r.tenant == tenant]
        return sorted(out, key=lambda r: (r.tenant, r.created_at, r.id))

"""``auditstream tokens create | list | revoke``: tenant-scoped API tokens (``api/tokens.py``)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime

import click
from rich.console import Console
from rich.markup import escape

from auditstream.api.tokens import (
    ROLE_SCOPES,
    Role,
    TokenError,
    TokenRecord,
    TokenStore,
    parse_expiry,
    parse_scopes,
)
from auditstream.cli.render import table

console = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def _store() -> TokenStore:
    from auditstream.cli.main import _settings

    return TokenStore.in_home(_settings().home)


@click.group()
def tokens() -> None:
    """API tokens: each reads one tenant's audit log, with the scopes it was given."""


@tokens.command("create")
@click.option("--tenant", required=True, help="The tenant whose audit log the token reads.")
@click.option(
    "--scope",
    "scopes",
    default="audit_log:read",
    show_default=True,
    help="Comma-separated: audit_log:read, audit_log:export, admin.",
)
@click.option(
    "--role",
    type=click.Choice(["owner", "admin", "member"]),
    default=None,
    help="Caps the scopes (member: read; admin: + export; owner: + admin). "
    "Default: the smallest role that holds the scopes.",
)
@click.option("--expires", default=None, help="30d, 12h, 2w, an ISO date, or never (default).")
@click.option("--name", default="", help="A note: who or what uses the token.")
@click.option("--json", "as_json", is_flag=True, help="Print the token and its record as JSON.")
def create(tenant: str, scopes: str, role: str | None, expires: str | None, name: str,
           as_json: bool) -> None:  # fmt: skip
    """Create a token; it is shown once (only its SHA-256 is kept)."""
    store = _store()
    try:
        wanted = parse_scopes(scopes)
        if role is None:
            chosen = next(r for r in (Role.MEMBER, Role.ADMIN, Role.OWNER)
                          if set(wanted) <= ROLE_SCOPES[r])  # fmt: skip
        else:
            chosen = Role(role)
        token, record = store.create(tenant, wanted, chosen, parse_expiry(expires), name)
    except TokenError as exc:
        err.print("[red]error:[/red]", escape(str(exc)))
        sys.exit(2)
    if as_json:
        click.echo(json.dumps({"token": token, **record.public()}))
        return
    console.print(f"token {record.id} for tenant {escape(record.tenant)} ({record.role}: "
                  f"{', '.join(record.scopes)}; expires {record.expires_at or 'never'})",
                  markup=False)  # fmt: skip
    console.print("Keep it now; it is not shown again:", markup=False)
    click.echo(token)


@tokens.command("list")
@click.option("--tenant", default=None)
@click.option("--json", "as_json", is_flag=True)
def list_tokens(tenant: str | None, as_json: bool) -> None:
    """Tokens and their state (never the secrets)."""
    store = _store()
    records = store.entries(tenant)
    if as_json:
        click.echo(json.dumps([r.public() for r in records]))
        return
    now = datetime.now(UTC)

    def state(r: TokenRecord) -> str:
        if r.revoked_at:
            return f"revoked {r.revoked_at}"
        return "expired" if r.expired(now) else "active"

    rows = [[r.id, r.tenant, r.role, ",".join(r.scopes), r.name, r.created_at,
             r.expires_at or "never", state(r)] for r in records]  # fmt: skip
    console.print(table(None, ["id", "tenant", "role", "scopes", "name", "created", "expires",
                               "state"], rows))  # fmt: skip


@tokens.command("revoke")
@click.argument("token_id")
def revoke(token_id: str) -> None:
    """Revoke a token by its id (or the token itself); takes effect on its next request."""
    store = _store()
    try:
        record = store.revoke(token_id)
    except TokenError as exc:
        err.print("[red]error:[/red]", escape(str(exc)))
        sys.exit(1)
    console.print(f"token {record.id} of tenant {escape(record.tenant)} revoked at "
                  f"{record.revoked_at}", markup=False)  # fmt: skip

"""``POST /v1/viewer-tokens``: a short-lived token for embedding the viewer in a product.

The customer's backend, holding an ``admin`` token of its tenant, mints a token for one of
its users: the same tenant, at most the scopes asked for (``audit_log:read`` by default,
``audit_log:export`` too if wanted), valid for minutes. The product then opens
``/ui/#token=<token>``: the fragment never reaches a server, and the viewer moves the token
to the tab's sessionStorage and out of the address bar at once.
"""

# No `from __future__ import annotations`: FastAPI reads the route's annotations, which name
# types local to `router`.
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from auditstream.api.tokens import Role, Scope, TokenError

if TYPE_CHECKING:
    from auditstream.api.app import Context

MAX_MINUTES = 60
VIEWER_SCOPES = (Scope.READ, Scope.EXPORT)
"""What a viewer token may hold: never ``admin``."""


class ViewerTokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    scopes: list[Scope] = Field(
        default=[Scope.READ], description="audit_log:read, audit_log:export"
    )
    minutes: int = Field(default=15, ge=1, le=MAX_MINUTES, description="Lifetime, at most 60")
    name: str = Field(default="viewer", max_length=200, description="Who it is for (a label)")


class ViewerToken(BaseModel):
    model_config = ConfigDict(frozen=True)

    token: str = Field(description="Shown once; hand it to the viewer as /ui/#token=...")
    tenant: str
    scopes: list[str]
    expires_at: datetime
    embed_path: str = Field(description="Open this path of the API's origin in an iframe")


def router(ctx: "Context", admin: Callable[..., Any]) -> APIRouter:
    from auditstream.api.app import ApiError

    api = APIRouter(tags=["tokens"])
    Admin = Annotated[Any, Depends(admin)]  # noqa: N806

    @api.post("/v1/viewer-tokens", response_model=ViewerToken, status_code=201)
    def viewer_token(who: Admin, body: ViewerTokenRequest) -> ViewerToken:
        """A short-lived token of the caller's tenant for the embedded viewer. Needs
        `admin`; never grants `admin`."""
        scopes = tuple(dict.fromkeys(body.scopes))
        beyond = [s.value for s in scopes if s not in VIEWER_SCOPES]
        if beyond or not scopes:
            raise ApiError(
                400, "bad_request", "a viewer token holds audit_log:read and/or audit_log:export"
            )
        role = Role.ADMIN if Scope.EXPORT in scopes else Role.MEMBER
        expires = ctx.clock() + timedelta(minutes=body.minutes)
        try:
            token, record = ctx.tokens.create(who.tenant, scopes, role, expires, name=body.name)
        except TokenError as exc:
            raise ApiError(400, "bad_request", str(exc)) from None
        return ViewerToken(
            token=token, tenant=record.tenant, scopes=list(record.scopes), expires_at=expires,
            embed_path=f"/ui/#token={token}",
        )  # fmt: skip

    return api

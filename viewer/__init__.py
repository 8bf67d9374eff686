"""The web audit-log viewer: static pages served by the API at ``/ui/`` (``mount``).

Plain HTML, CSS and JavaScript modules in ``static/``, no build step; Chart.js is vendored
in ``static/vendor/``. The pages talk to the API only through its JSON endpoints, with the
token the user signs in with (kept in the tab's sessionStorage).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from auditstream.api.query import DEFAULT_PAGE, MAX_PAGE
from auditstream.schemas.actions import ACTION_GROUPS, Action
from auditstream.schemas.alert import Severity
from auditstream.schemas.event import ActorType

if TYPE_CHECKING:
    from auditstream.api.app import Context

STATIC = Path(__file__).parent / "static"

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
"""On every viewer file. The pages' Content-Security-Policy (own origin only, no inline
script) is in ``index.html``; framing is left allowed so that a product can embed it."""


class _Static(StaticFiles):
    async def get_response(self, path: str, scope: Any) -> Any:
        response = await super().get_response(path, scope)
        response.headers.update(SECURITY_HEADERS)
        return response


def viewer_config(ctx: Context) -> dict[str, Any]:
    """What the pages need to know about this API: the lists the filters offer and limits."""
    return {
        "actions": [a.value for a in Action],
        "action_groups": {
            name: sorted(a.value for a in acts) for name, acts in ACTION_GROUPS.items()
        },
        "actor_types": [t.value for t in ActorType],
        "severities": [s.value for s in Severity],
        "default_range_days": ctx.api.default_range_days,
        "max_range_days": ctx.api.max_range_days,
        "export_job_rows": ctx.api.export_job_rows,
        "page_size": DEFAULT_PAGE,
        "max_page_size": MAX_PAGE,
    }


def mount(app: FastAPI, ctx: Context, reader: Callable[..., Any]) -> None:
    """Serve the viewer at ``/ui/`` and the alerts it shows at ``/v1/alerts``.

    ``reader`` is the API's dependency that checks a token for ``audit_log:read`` and
    returns the caller (with ``.tenant``)."""
    from auditstream.viewer import alerts

    config = viewer_config(ctx)

    @app.get("/ui", include_in_schema=False)
    def _ui_root() -> RedirectResponse:
        return RedirectResponse("/ui/")

    @app.get("/ui/config.json", include_in_schema=False)
    def _ui_config() -> JSONResponse:
        return JSONResponse(config, headers=SECURITY_HEADERS)

    app.include_router(alerts.router(ctx, reader))
    app.mount("/ui", _Static(directory=STATIC, html=True), name="ui")

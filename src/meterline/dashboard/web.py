"""What every dashboard route shares: templates, the session dependencies, HTML error
pages, form errors, and the security headers (CSP) of every page."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from meterline.dashboard import session as sessions
from meterline.dashboard.session import DashboardSession
from meterline.dashboard.snapshot import Snapshots
from meterline.errors import MeterlineError
from meterline.kit.decimals import display_decimal
from meterline.kit.time import utc_now
from meterline.runtime import runtime_of

STATIC = "/dashboard/static"


class SignInRequired(Exception):
    """No valid session: the page sends the browser to the sign-in form."""

    def __init__(self, back_to: str) -> None:
        super().__init__(back_to)
        self.back_to = back_to


def _moment(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def _when(value: Any) -> str:
    """A time as ``2026-11-29 12:00 UTC``, in its own offset (a customer's periods are
    in its time zone): ISO strings and datetimes alike."""
    if value is None or value == "":
        return "—"
    moment = _moment(value)
    offset = moment.utcoffset()
    zone = "UTC" if not offset else moment.strftime("%z")[:3] + ":" + moment.strftime("%z")[3:]
    return moment.strftime("%Y-%m-%d %H:%M ") + zone


def _day(value: Any) -> str:
    if value is None:
        return "—"
    return _moment(value).strftime("%Y-%m-%d")


def _span(seconds: Any) -> str:
    """A duration in words: ``2 h 5 min``, ``40 s``."""
    total = int(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else ""]
    parts.append(f"{minutes} min" if minutes else "")
    if total < 60:
        parts.append(f"{secs} s")
    return " ".join(p for p in parts if p) or "0 s"


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("meterline.dashboard", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["day"] = _day
    env.filters["dec"] = display_decimal
    env.filters["span"] = _span
    env.globals["static"] = lambda path: f"{STATIC}/{path}"
    return env


templates = Jinja2Templates(env=_environment())


def render(
    request: Request,
    name: str,
    context: dict[str, Any],
    *,
    status: int = 200,
    session: DashboardSession | None = None,
) -> HTMLResponse:
    return templates.TemplateResponse(
        request,
        name,
        {"session": session, "done": request.query_params.get("done"), **context},
        status_code=status,
    )


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


class DashboardRoute(APIRoute):
    """Dashboard routes answer in HTML: no session sends the browser to sign in (htmx
    gets ``HX-Redirect``), an expected error is an error page with its status."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def html(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired as exc:
                target = f"/dashboard/login?next={quote(exc.back_to, safe='/')}"
                if is_htmx(request):
                    return Response(status_code=204, headers={"HX-Redirect": target})
                return RedirectResponse(target, status_code=303)
            except MeterlineError as error:
                return render(request, "error.html", {"error": error}, status=error.status)

        return html


def _back_to(request: Request) -> str:
    path = request.url.path
    if request.method != "GET":
        return "/dashboard"
    return f"{path}?{request.url.query}" if request.url.query else path


def _resolve(request: Request) -> DashboardSession | None:
    state = runtime_of(request)
    return sessions.resolve(
        request.cookies.get(sessions.SESSION_COOKIE), state.key_cache, state.db, utc_now()
    )


def viewer(request: Request) -> DashboardSession:
    """The signed-in session (a dependency of every page)."""
    found = _resolve(request)
    if found is None:
        raise SignInRequired(_back_to(request))
    return found


@dataclass(frozen=True)
class Posted:
    """A form posted by a session allowed to change things, its CSRF token checked."""

    session: DashboardSession
    form: FormData

    def get(self, name: str) -> str:
        value = self.form.get(name)
        return value.strip() if isinstance(value, str) else ""

    def values(self) -> dict[str, str]:
        return {k: v for k, v in self.form.items() if isinstance(v, str)}

    def given(self, *names: str) -> dict[str, str]:
        """The named fields that were filled in (the others take their defaults)."""
        return {name: self.get(name) for name in names if self.get(name)}

    def all(self, name: str) -> list[str]:
        return [v for v in self.form.getlist(name) if isinstance(v, str)]


async def poster(request: Request) -> Posted:
    """Every dashboard POST: a session (else sign in), an admin one (else 403
    ``read_only_session``), and the form's CSRF token (else 403 ``csrf_failed``)."""
    form = await request.form()
    found = await run_in_threadpool(_resolve, request)
    if found is None:
        raise SignInRequired(_back_to(request))
    sessions.may_write(found)
    sent = form.get(sessions.CSRF_FIELD) or request.headers.get(sessions.CSRF_HEADER)
    sessions.check_csrf(found, sent if isinstance(sent, str) else None)
    return Posted(found, form)


def field_errors(exc: Exception) -> dict[str, str]:
    """A failed form's messages by field (``""``: about the whole form)."""
    if isinstance(exc, ValidationError):
        found: dict[str, str] = {}
        for error in exc.errors():
            field = ".".join(str(p) for p in error.get("loc", ())) or ""
            message = str(error.get("msg", "")).removeprefix("Value error, ")
            found.setdefault(field, message)
        return found
    if isinstance(exc, MeterlineError):
        if exc.errors:
            return {e.field: e.message for e in exc.errors}
        return {"": exc.detail}
    raise exc


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def is_https(request: Request) -> bool:
    """HTTPS, directly or behind a proxy that says so (X-Forwarded-Proto, Forwarded)."""
    if request.url.scheme == "https":
        return True
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    standard = request.headers.get("forwarded", "").lower()
    return forwarded == "https" or "proto=https" in standard


# -- security headers ---------------------------------------------------------------------

_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors {ancestors}"
)


class SecurityHeaders:
    """CSP and friends on every dashboard and portal response: scripts and styles from
    this server only (no inline script, no inline event handlers), no framing of the
    dashboard, the portal framed only by ``METERLINE_PORTAL_FRAME_ANCESTORS``."""

    def __init__(self, app: ASGIApp, portal_ancestors: str) -> None:
        self.app = app
        self.headers = {
            "/dashboard": [*self._headers("'none'"), (b"x-frame-options", b"DENY")],
            "/portal": self._headers(portal_ancestors),
        }

    @staticmethod
    def _headers(ancestors: str) -> list[tuple[bytes, bytes]]:
        return [
            (b"content-security-policy", _POLICY.format(ancestors=ancestors).encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"cache-control", b"no-store"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "") if scope["type"] == "http" else ""
        extra = next((h for prefix, h in self.headers.items() if path.startswith(prefix)), None)
        if extra is None or path.startswith(STATIC):
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, receive, with_headers)


Viewer = Annotated[DashboardSession, Depends(viewer)]
Post = Annotated[Posted, Depends(poster)]
Text = Annotated[str | None, Query()]


def snapshots(request: Request) -> Snapshots:
    found: Snapshots = runtime_of(request).dashboard.snapshots
    return found


def changed(request: Request, workspace_id: int) -> None:
    """A change made here: revenue figures across customers are computed again."""
    snapshots(request).invalidate(workspace_id)

"""The facilities dashboard and its login (docs/web.md, "Facilities dashboard").

Owns the routes `/login` (GET: the form; POST: a login), `/logout` (POST) and `/dashboard`
(every office of this worker and its devices, problems first, with filters), and the rules of
their forms: every POST carries a CSRF token (the session's; before a login, the one of a
short-lived login cookie) and is refused by a browser's word that it comes from another site.

Reads the hub's frozen views only, like the residents' pages. Accounts, sessions and the login
limits are central/web/auth.py's.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from central.web.auth import Staff, csrf_ok, login_keys
from central.web.i18n import Lang, pick
from central.web.view import DeviceView, OfficeView
from office.mqtt import OFFICE_ID

SESSION_COOKIE = "cf_session"
LOGIN_COOKIE = "cf_login"  # the login form's CSRF token, before there is a session
LOGIN_COOKIE_S = 3600
FORM_MAX = 8192  # bytes of a form body; a login form is far smaller
# A printer's status that needs someone (docs/mqtt.md, devices: `status`).
PRINTER_PROBLEMS = ("cover_open", "paper_near_end", "paper_out", "error", "problem")

_log = logging.getLogger(__name__)


class Render(Protocol):
    def __call__(self, template: str, request: Request, lang: Lang, **values: Any) -> str: ...


def office_problems(view: OfficeView) -> list[tuple[str, dict[str, str]]]:
    """What needs someone at an office, worst first: (message key, its values)."""
    found: list[tuple[str, dict[str, str]]] = []
    if view.gateway != "online":
        found.append((f"problem_gateway_{view.gateway}", {}))
    if view.missing:
        seqs = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in view.missing)
        found.append(("problem_missing", {"seqs": seqs}))
    for d in view.devices:
        found.extend(device_problems(d))
    return found


def device_problems(d: DeviceView) -> list[tuple[str, dict[str, str]]]:
    found: list[tuple[str, dict[str, str]]] = []
    if d.state != "online":
        found.append((f"problem_device_{'offline' if d.state == 'offline' else 'stale'}", {"device": d.device}))
    if d.printer in PRINTER_PROBLEMS:
        found.append((f"problem_printer_{d.printer}", {"device": d.device}))
    return found


def _when(value: datetime | str | None, today: str) -> str | None:
    """A time as the dashboard shows it: HH:MM:SS today, else the date and HH:MM."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(text := value)
        except ValueError:
            return text
    if value.date().isoformat() == today:
        return value.strftime("%H:%M:%S")
    return value.strftime("%Y-%m-%d %H:%M")


async def read_form(request: Request) -> dict[str, str] | None:
    """A urlencoded form's fields (the first of each), or None for anything else or too much."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > FORM_MAX:
            return None
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=16, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        return None
    return {k: v[0] for k, v in fields.items()}


def cross_site(request: Request) -> bool:
    """The browser says the request comes from another site (Fetch Metadata; absent in old
    browsers, where the CSRF token and SameSite=Strict still hold)."""
    return request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none")


def routes(
    staff: Staff,
    views: Callable[[], list[OfficeView]],
    render: Render,
    clock: Callable[[], datetime],
    headers: Mapping[str, str],
) -> list[Route]:
    """The dashboard's routes over `views` (the hub's), rendered by the app's `render`."""

    def secure(request: Request) -> bool:
        return staff.secure or request.url.scheme == "https"

    def page(html: str, status: int = 200) -> HTMLResponse:
        return HTMLResponse(html, status, headers=dict(headers))

    def redirect(to: str) -> RedirectResponse:
        return RedirectResponse(to, 303, headers=dict(headers))

    def client(request: Request) -> str:
        return request.client.host if request.client is not None else "?"

    # -- logging in and out ----------------------------------------------------------------------
    def login_page(request: Request, lang: Lang, error: str | None = None, status: int = 200) -> Response:
        token = secrets.token_urlsafe(24)
        response = page(render("login.html", request, lang, csrf=token, error=error, live=""), status)
        response.set_cookie(
            LOGIN_COOKIE,
            token,
            max_age=LOGIN_COOKIE_S,
            path="/login",
            httponly=True,
            samesite="strict",
            secure=secure(request),
        )
        return response

    async def login_form(request: Request) -> Response:
        lang = pick(request.query_params.get("lang"))
        if staff.current(request.cookies.get(SESSION_COOKIE)) is not None:
            return redirect(f"/dashboard?lang={lang}")
        return login_page(request, lang)

    async def login(request: Request) -> Response:
        form = await read_form(request)
        lang = pick((form or {}).get("lang"))
        sent = (form or {}).get("csrf", "")
        expected = request.cookies.get(LOGIN_COOKIE, "")
        if form is None or cross_site(request) or not expected or not secrets.compare_digest(sent, expected):
            return login_page(request, lang, "login_form_expired", 403)
        user, password = form.get("user", "").strip(), form.get("password", "")
        keys = login_keys(user, client(request))
        if staff.limiter.locked_for(keys) > 0:
            return login_page(request, lang, "login_locked", 429)
        # scrypt takes ~0.1 s: off the event loop, so the other pages go on meanwhile.
        stamp = await run_in_threadpool(staff.check, user, password) if user and password else None
        if stamp is None:
            for key in staff.limiter.failed(keys):
                # A user name only when it is an account's: a password typed in its place is never logged.
                shown = key if key.startswith("addr:") or staff.users.get(user) is not None else "user:(not a user)"
                _log.warning("central web: logins locked for %s after repeated failures", shown)
            _log.info("central web: a failed login from %s", client(request))
            return login_page(request, lang, "login_failed", 401)
        staff.limiter.succeeded(keys)
        token, _ = staff.sessions.create(user, stamp)
        _log.info("central web: %s logged in from %s", user, client(request))
        response = redirect(f"/dashboard?lang={lang}")
        response.set_cookie(SESSION_COOKIE, token, path="/", httponly=True, samesite="strict", secure=secure(request))
        response.delete_cookie(LOGIN_COOKIE, path="/login")
        return response

    async def logout(request: Request) -> Response:
        token = request.cookies.get(SESSION_COOKIE)
        session = staff.current(token)
        form = await read_form(request)
        lang = pick((form or {}).get("lang"))
        if session is not None:
            if form is None or cross_site(request) or not csrf_ok(session, form.get("csrf")):
                return page(render("message.html", request, lang, key="csrf_refused", live=""), 403)
            staff.sessions.end(token)
            _log.info("central web: %s logged out", session.user)
        response = redirect(f"/login?lang={lang}")
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # -- the dashboard ---------------------------------------------------------------------------
    def office_row(view: OfficeView, now: datetime) -> dict[str, Any]:
        tz = view.at.tzinfo if view.at is not None else now.tzinfo
        today = now.astimezone(tz).date().isoformat()
        devices = sorted(view.devices, key=lambda d: (not device_problems(d), d.device))
        return {
            "view": view,
            "problems": office_problems(view),
            "stale": view.gateway != "online" or bool(view.missing),
            "mode": view.mode_at(now) or "unknown",
            "last_event": _when(view.at, today),
            "waiting": sum(s.waiting for s in view.services),
            "devices": [
                {"d": d, "problems": device_problems(d), "last_seen": _when(d.last_seen, today)} for d in devices
            ],
        }

    async def dashboard(request: Request) -> Response:
        lang = pick(request.query_params.get("lang"))
        session = staff.current(request.cookies.get(SESSION_COOKIE))
        if session is None:
            return redirect(f"/login?lang={lang}")
        now = clock()
        every = [office_row(v, now) for v in views()]
        office = request.query_params.get("office", "")
        only_problems = request.query_params.get("problems") == "1"
        shown = [
            o for o in every if (not office or o["view"].office == office) and (not only_problems or o["problems"])
        ]
        shown.sort(key=lambda o: (not o["problems"], -len(o["problems"]), o["view"].office))
        html = render(
            "dashboard.html",
            request,
            lang,
            user=session.user,
            csrf=session.csrf,
            offices=shown,
            every=[o["view"].office for o in every],
            office=office if OFFICE_ID.fullmatch(office) else "",
            only_problems=only_problems,
            problem_count=sum(1 for o in every if o["problems"]),
            now=now.strftime("%H:%M:%S"),
            live="",
        )
        return page(html)

    return [
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/dashboard", dashboard, methods=["GET"]),
    ]

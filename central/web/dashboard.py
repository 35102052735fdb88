"""The facilities dashboard and its login (docs/web.md, "Facilities dashboard").

Owns the routes `/login` (GET: the form; POST: a login), `/logout` (POST), `/dashboard` (every
office of this worker and its devices, problems first, with filters; per office the remote
command forms, the commands sent with their acks, and the audit list), `/dashboard/command`
(POST: one remote command) and `/dashboard/events` (its live parts, Server-Sent Events), and
the rules of their forms: every POST carries a CSRF token (the session's; before a login, the
one of a short-lived login cookie) and is refused by a browser's word that it comes from
another site.

Reads the hub's frozen views and the command desk's snapshots only, never the worker's state:
a command is handed to the worker through the desk (central/web/commands.py). Accounts,
sessions and the login limits are central/web/auth.py's.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from central.alerts.mail import MailTarget, mask
from central.web.auth import Session, Staff, csrf_ok, login_keys
from central.web.commands import BUS_DEVICE, CommandDesk, FormError, OfficeFacts, command_from_form
from central.web.hub import RELOAD, Subscription, ViewHub
from central.web.i18n import Lang, pick
from central.web.names import Names
from central.web.view import DeviceView, OfficeView
from office import mqtt
from office.mqtt import OFFICE_ID

SESSION_COOKIE = "cf_session"
LOGIN_COOKIE = "cf_login"  # the login form's CSRF token, before there is a session
LOGIN_COOKIE_S = 3600
FORM_MAX = 8192  # bytes of a form body; a login form is far smaller
# A printer's status that needs someone (docs/mqtt.md, devices: `status`).
PRINTER_PROBLEMS = ("cover_open", "paper_near_end", "paper_out", "error", "problem")

if TYPE_CHECKING:  # the service imports the web's hub: only its type here
    from central.alerts.service import AlertService

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


def sse(event: str, data: str) -> str:
    """One Server-Sent Event, as app.py's streams send them."""
    lines = "".join(f"data: {line}\n" for line in data.split("\n"))
    return f"event: {event}\n{lines}\n"


def cross_site(request: Request) -> bool:
    """The browser says the request comes from another site (Fetch Metadata; absent in old
    browsers, where the CSRF token and SameSite=Strict still hold)."""
    return request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none")


def routes(
    staff: Staff,
    hub: ViewHub,
    desk: CommandDesk,
    names: Names,
    render: Render,
    clock: Callable[[], datetime],
    headers: Mapping[str, str],
    keepalive_s: float,
    alerts: AlertService | None = None,
) -> list[Route]:
    """The dashboard's routes over the hub's views and the desk's commands, rendered by the
    app's `render`; `alerts`: the residents' subscriptions, listed per office with their
    addresses masked (docs/alerts.md)."""

    def secure(request: Request) -> bool:
        return staff.secure or request.url.scheme == "https"

    def page(html: str, status: int = 200) -> HTMLResponse:
        return HTMLResponse(html, status, headers=dict(headers))

    def redirect(to: str) -> RedirectResponse:
        return RedirectResponse(to, 303, headers=dict(headers))

    def client(request: Request) -> str:
        return request.client.host if request.client is not None else "?"

    def _stream(frames: AsyncIterator[str]) -> StreamingResponse:
        # A proxy in front must not hold the events back.
        return StreamingResponse(frames, media_type="text/event-stream", headers={**headers, "X-Accel-Buffering": "no"})

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
        facts = office_facts(view, names)
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
            "counter_ids": sorted(facts.counters, key=_counter_order),
            "dispensers": sorted(d for d, kind in facts.devices.items() if kind == "dispenser"),
            "bus_devices": sorted(d for d in facts.devices if BUS_DEVICE.fullmatch(d)),
            "commands": desk.commands(view.office),
            "audit": [{"a": a, "time": _when(a.ts, today)} for a in desk.audit(view.office)],
            "alerts": alert_rows(view),
        }

    def alert_rows(view: OfficeView) -> list[dict[str, Any]]:
        """The office's alert subscriptions: the ticket, the choice, the channels — an address
        only masked, a push subscription only as "yes"."""
        if alerts is None:
            return []
        rows = []
        for sub in alerts.subscriptions_of(view.office):
            ticket = view.tickets.get(sub.token_hash)
            mail = sub.targets.get("mail")
            rows.append(
                {
                    "ticket": ticket.ticket if ticket is not None else "—",
                    "by": sub.watch.choice.by,
                    "value": sub.watch.choice.value,
                    "push": "push" in sub.targets,
                    "mail": masked_target(mail) if mail is not None else None,
                    "sent": sorted({key.split(":")[0] for key in sub.watch.sent}),
                }
            )
        return sorted(rows, key=lambda r: str(r["ticket"]))

    def summary(every: list[dict[str, Any]], now: datetime) -> dict[str, Any]:
        return {
            "every": [o["view"].office for o in every],
            "problem_count": sum(1 for o in every if o["problems"]),
            "now": now.strftime("%H:%M:%S"),
            "cmd_names": mqtt.COMMANDS,
        }

    def dashboard_page(
        request: Request,
        session: Session,
        lang: Lang,
        error: FormError | None = None,
        error_office: str = "",
        status: int = 200,
    ) -> Response:
        """The page; with `error`, a refused form's problem shown at `error_office`'s forms (or
        at the top for an unknown office)."""
        now = clock()
        every = [office_row(v, now) for v in hub.views()]
        office = request.query_params.get("office", "")
        only_problems = request.query_params.get("problems") == "1"
        shown = [
            o for o in every if (not office or o["view"].office == office) and (not only_problems or o["problems"])
        ]
        shown.sort(key=lambda o: (not o["problems"], -len(o["problems"]), o["view"].office))
        office = office if OFFICE_ID.fullmatch(office) else ""
        html = render(
            "dashboard.html",
            request,
            lang,
            user=session.user,
            csrf=session.csrf,
            offices=shown,
            office=office,
            only_problems=only_problems,
            error={"key": error.key, "values": error.values, "office": error_office} if error else None,
            live=f"/dashboard/events?{urlencode({'lang': lang, 'office': office})}",
            **summary(every, now),
        )
        return page(html, status)

    async def dashboard(request: Request) -> Response:
        lang = pick(request.query_params.get("lang"))
        session = staff.current(request.cookies.get(SESSION_COOKIE))
        if session is None:
            return redirect(f"/login?lang={lang}")
        return dashboard_page(request, session, lang)

    # -- commands --------------------------------------------------------------------------------
    async def command(request: Request) -> Response:
        """A remote command from a form: checked (the session, its CSRF token, the fields), then
        handed to the worker, which publishes it; the page shows it and, live, its acks."""
        session = staff.current(request.cookies.get(SESSION_COOKIE))
        form = await read_form(request)
        lang = pick((form or {}).get("lang"))
        if session is None:
            return page(render("message.html", request, lang, key="cmd_login", live=""), 403)
        if form is None or cross_site(request) or not csrf_ok(session, form.get("csrf")):
            return page(render("message.html", request, lang, key="csrf_refused", live=""), 403)
        office = form.get("office", "")
        view = hub.view(office) if OFFICE_ID.fullmatch(office) else None
        try:
            if view is None:
                raise FormError("cmd_error_office", office=office[:32])
            name, fields = command_from_form(form, office_facts(view, names))
            request_id = desk.submit(office, name, fields, session.user, view.gateway != "online")
        except FormError as exc:
            return dashboard_page(request, session, lang, exc, office if view is not None else "", 400)
        _log.info("central web: %s sent %s to %s (%s)", session.user, name, office, request_id)
        return redirect(f"/dashboard?lang={lang}#staff-{office}")

    async def back(request: Request) -> Response:
        return redirect(f"/dashboard?lang={pick(request.query_params.get('lang'))}")

    # -- live updates ----------------------------------------------------------------------------
    def fragments(request: Request, lang: Lang, office: str, changed: set[str] | None) -> list[tuple[str, str]]:
        """(element id, its HTML) of the live parts: the summary, and per office (every one, or
        those `changed`) its state, its commands and its audit list."""
        now = clock()
        views = hub.views()
        every = [office_row(v, now) for v in views]
        common = summary(every, now)
        out = [("summary", render("_dash_summary.html", request, lang, **common))]
        for o in every:
            one = o["view"].office
            if (office and one != office) or (changed is not None and one not in changed):
                continue
            for part in ("live", "cmds", "audit"):
                html = render(PARTS[part], request, lang, o=o, **common)
                out.append((f"{part}-{one}", html))
        return out

    async def live(request: Request) -> Response:
        """The dashboard's live parts as Server-Sent Events (`event: dashboard`, each a fragment
        replacing the element with its id); `gone` once the session has ended. Only for a
        signed-in session, which the stream does not keep alive by itself."""
        token = request.cookies.get(SESSION_COOKIE)
        if staff.current(token, touch=False) is None:
            return PlainTextResponse("403 ログインしてください / please log in\n", 403, headers=dict(headers))
        lang = pick(request.query_params.get("lang"))
        office = request.query_params.get("office", "")
        office = office if OFFICE_ID.fullmatch(office) else ""
        return _stream(_frames(request, token, lang, office))

    async def _frames(request: Request, token: str | None, lang: Lang, office: str) -> AsyncIterator[str]:
        sub = hub.subscribe(None)
        poked = desk.subscribe()
        sent: dict[str, str] = {}
        changed: set[str] | None = None  # offices to render again (None: all)
        waits: dict[str, asyncio.Future[Any]] = {}
        try:
            while True:
                if staff.current(token, touch=False) is None:
                    yield sse("gone", "")  # the page reloads into the login
                    return
                for fid, html in fragments(request, lang, office, changed):
                    if sent.get(fid) != html:
                        sent[fid] = html
                        yield sse("dashboard", html)
                if "view" not in waits:
                    waits["view"] = asyncio.ensure_future(sub.next())
                if "desk" not in waits:
                    waits["desk"] = asyncio.ensure_future(poked.wait())
                done, _ = await asyncio.wait(waits.values(), timeout=_timeout(), return_when=asyncio.FIRST_COMPLETED)
                changed = set()
                if not done:  # the keep-alive, or a command turning "no answer yet"
                    yield ": keepalive\n\n"
                    changed = None
                if waits["view"] in done:
                    changed = _views_changed(waits.pop("view").result(), sub, changed)
                if waits["desk"] in done:
                    waits.pop("desk")
                    poked.clear()
                    changed = None  # commands and audit lists: every office's
        finally:
            for wait in waits.values():
                wait.cancel()
            sub.close()
            desk.unsubscribe(poked)

    def _timeout() -> float:
        due = desk.next_deadline()
        if due is None:
            return keepalive_s
        return max(0.05, min(keepalive_s, due - desk.clock() + 0.05))

    return [
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/dashboard", dashboard, methods=["GET"]),
        Route("/dashboard/command", command, methods=["POST"]),
        # A refused form's page is served at this URL: its language switch comes back here.
        Route("/dashboard/command", back, methods=["GET"]),
        Route("/dashboard/events", live, methods=["GET"]),
    ]


PARTS = {"live": "_dash_live.html", "cmds": "_dash_commands.html", "audit": "_dash_audit.html"}


def _views_changed(first: tuple[str, int], sub: Subscription, changed: set[str] | None) -> set[str] | None:
    """The offices whose views changed: `first` and whatever else waits in the queue (taken at
    once, so a burst of rounds is rendered once); None: all of them (a reload)."""
    news = [first]
    while not sub.queue.empty():
        news.append(sub.queue.get_nowait())
    if changed is None or any(version == RELOAD for _, version in news):
        return None
    return changed | {office for office, _ in news}


def masked_target(target: str) -> str:
    """A mail target as staff see it: the address masked (or "?" for one that cannot be read)."""
    try:
        return mask(MailTarget.decode(target).to)
    except ValueError:
        return "?"


def office_facts(view: OfficeView, names: Names) -> OfficeFacts:
    """What a command form is checked against: the office's counters (today's, and its
    config's when central has it), its devices as they last reported, its business day."""
    counters = {c.counter for c in view.counters} | {c for (o, c) in names.counters if o == view.office}
    return OfficeFacts(frozenset(counters), {d.device: d.kind for d in view.devices}, view.day)


def _counter_order(counter: str) -> tuple[int, str]:
    return (int(counter), "") if counter.isdigit() else (1 << 30, counter)

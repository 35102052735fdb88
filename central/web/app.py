"""The residents' web pages, served by central: a Starlette app over the ViewHub (docs/web.md).

Owns the routes, the token check, the rendering and the live streams:

- `/` and `/<office>/`: the public congestion page (every office, or one), no login.
- `/<office>/t/<token>`: one resident's ticket page (the QR code's `{public_base_url}/t/<token>`);
  the token is hashed here and looked up by hash: central holds no token, and neither the token
  nor its path is logged (uvicorn's access log is off; see server.py).
- `…/events`: Server-Sent Events of the same pages' live parts, as rendered HTML fragments.
- `/static/…`: the pages' own CSS and script; a page fetches nothing from anywhere else (the
  Content-Security-Policy says so to the browser too).
- `/login`, `/logout`, `/dashboard` (and its `/command`, `/events`): the facilities dashboard
  (dashboard.py), only when given the staff's accounts (`staff`).

Pages read only the hub's frozen views, never the worker's state, and never wait on an office.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from central.web import dashboard
from central.web.alerts_api import AlertsWeb, alert_routes
from central.web.auth import Staff
from central.web.commands import CommandDesk
from central.web.forecast import Forecaster, StandInForecaster
from central.web.hub import RELOAD, ViewHub
from central.web.i18n import LANGS, Lang, pick, text
from central.web.names import Names
from central.web.view import OfficeView, TicketView
from office.estimate import UNREACHABLE_MINUTES
from office.mqtt import OFFICE_ID

HERE = Path(__file__).parent
# A page token as the gateway makes them (secrets.token_urlsafe(24): 32 characters); anything else
# is not looked up at all.
TOKEN = re.compile(r"[A-Za-z0-9_-]{16,128}")
KEEPALIVE_S = 20.0  # an idle stream sends a comment this often (proxies close silent ones), and
# re-renders, so that the mode and the minutes left follow the clock without any event
FORECAST_DAYS = 7
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # a ticket page's URL holds its token: never sent onwards
    "X-Content-Type-Options": "nosniff",
    # Nothing from anywhere else; inline styles allowed for the forecaster's SVG.
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
}
Clock = Callable[[], datetime]


def token_hash(token: str) -> str:
    """As the gateway hashes it (office.model.token_hash): SHA-256 hex of the UTF-8 token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _now() -> datetime:
    return datetime.now().astimezone()


def not_found() -> Response:
    """The same for an unknown office, a malformed token, an unknown one and yesterday's: a
    page says nothing of whether a token ever existed."""
    return PlainTextResponse(f"{text('not_found', 'ja')} / not found\n", 404, headers=HEADERS)


def minutes(seconds: float) -> int:
    return max(0, math.ceil(seconds / 60))


def create_app(
    hub: ViewHub,
    forecaster: Forecaster | None = None,
    names: Names | None = None,
    clock: Clock = _now,
    keepalive_s: float = KEEPALIVE_S,
    staff: Staff | None = None,
    desk: CommandDesk | None = None,
    alerts: AlertsWeb | None = None,
) -> Starlette:
    """The web app over `hub`. `forecaster`: the public page's forecast (default: the stand-in,
    central/web/forecast.py); `names`: display names (default: ids); `clock`: now, aware;
    `staff`: the facilities accounts (None: no dashboard, its URLs are 404); `desk`: where the
    dashboard's commands go to the worker (central/web/commands.py); `alerts`: the residents'
    alerts (central/web/alerts_api.py; None: the page's own alert only, no subscriptions)."""
    fc: Forecaster = forecaster or StandInForecaster()
    nm = names or Names()
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(), enable_async=False)

    def render(template: str, request: Request, lang: Lang, **values: Any) -> str:
        def t(key: str, **kw: object) -> str:
            return text(key, lang, **kw)

        def switch(to: Lang) -> str:
            return f"{request.url.path}?lang={to}"  # the same page: only the language changes

        static = str(request.url_for("static", path="web.css").path).removesuffix("web.css")
        return env.get_template(template).render(
            t=t, lang=lang, langs=LANGS, switch=switch, static=static, names=nm, **values
        )

    # -- the ticket page ---------------------------------------------------------------------------
    def ticket_values(view: OfficeView, ticket: TicketView, lang: Lang) -> dict[str, Any]:
        now = clock()
        values: dict[str, Any] = {"office": view.office, "ticket": ticket, "service": ticket.service}
        values["callers"] = view.callers(ticket.service)  # for the page's alert rule (docs/alerts.md)
        if ticket.status == "no_show":
            values["rejoin"] = getattr(nm.alert_settings(view.office).rejoin, lang)
        if ticket.call_from is not None and ticket.call_to is not None:
            low = minutes((ticket.call_from - now).total_seconds())
            high = max(low, minutes((ticket.call_to - now).total_seconds()))
            tz = view.at.tzinfo if view.at is not None else None
            values["wait"] = (low, high)
            values["window"] = (ticket.call_from.astimezone(tz), ticket.call_to.astimezone(tz))
            # The estimate's "not before closing" (office/estimate.py: a day from when it was made):
            # no number of minutes to show.
            made = view.at or now
            values["unreachable"] = (ticket.call_from - made).total_seconds() >= UNREACHABLE_MINUTES * 60
        return values

    def lookup(request: Request) -> tuple[OfficeView, str] | None:
        office, token = request.path_params["office"], request.path_params["token"]
        if not OFFICE_ID.fullmatch(office) or not TOKEN.fullmatch(token):
            return None
        view = hub.view(office)
        digest = token_hash(token)
        if view is None or digest not in view.tickets:
            return None
        return view, digest

    async def ticket_page(request: Request) -> Response:
        lang = pick(request.query_params.get("lang"))
        found = lookup(request)
        if found is None:
            return not_found()
        view, digest = found
        values = ticket_values(view, view.tickets[digest], lang)
        events = f"{request.url.path}/events?lang={lang}"
        html = render("ticket.html", request, lang, live=events, **values)
        return HTMLResponse(html, headers=HEADERS)

    async def ticket_events(request: Request) -> Response:
        lang = pick(request.query_params.get("lang"))
        found = lookup(request)
        if found is None:
            return not_found()
        office, digest = found[0].office, found[1]
        # What the fragment was last rendered from, and the fragment: rendered again only when the
        # ticket's values changed, the minutes from now included (the keep-alive's wake, every
        # keepalive_s, follows the clock; most of those wakes change nothing).
        last: list[Any] = [None, ""]

        def fragment() -> str | None:
            view = hub.view(office)
            ticket = view.tickets.get(digest) if view is not None else None
            if view is None or ticket is None:
                return None  # a new business day: the ticket is gone
            values = ticket_values(view, ticket, lang)
            key = (values, view.at.tzinfo if view.at is not None else None)
            if key != last[0]:
                last[:] = [key, render("_ticket.html", request, lang, **values)]
            return str(last[1])

        async def frames() -> AsyncIterator[str]:
            async for html in _watch(hub, office, fragment, keepalive_s, digest):
                if html is None:
                    yield sse("gone", "")
                    return
                yield sse("ticket", html) if html else ": keepalive\n\n"

        return _stream(frames())

    # -- the public page ---------------------------------------------------------------------------
    def office_values(view: OfficeView, lang: Lang) -> dict[str, Any]:
        now = clock()
        tz = view.at.tzinfo if view.at is not None else None
        today = now.astimezone(tz).date()
        services = []
        for s in view.services:
            services.append(
                {
                    "id": s.service,
                    "waiting": s.waiting,
                    "low": minutes(s.low_s),
                    "high": max(minutes(s.low_s), minutes(s.high_s)),
                    # A ticket taken now would not be called before closing: reception is over.
                    "unreachable": minutes(s.low_s) >= UNREACHABLE_MINUTES,
                }
            )
        return {
            "view": view,
            "services": services,
            "mode": view.mode_at(now) or "unknown",
            "periods": view.periods if view.day == today.isoformat() else (),
            "updated": view.at.strftime("%H:%M") if view.at is not None else None,
            "today": today,
        }

    def charts(view: OfficeView, lang: Lang, today: date) -> list[dict[str, Any]]:
        days: Sequence[date] = [today + timedelta(days=i) for i in range(FORECAST_DAYS)]
        out = []
        for s in view.services:
            hours = fc.hourly(view.office, s.service, today)
            quiet = sorted(hours, key=lambda h: (h.wait_s, h.hour))[:3]
            out.append(
                {
                    "id": s.service,
                    "svg": fc.chart_svg(view.office, s.service, days, lang),
                    "quiet": [f"{h.hour}:00" for h in sorted(quiet, key=lambda h: h.hour)],
                }
            )
        return out

    async def public_page(request: Request) -> Response:
        lang = pick(request.query_params.get("lang"))
        office = request.path_params.get("office")
        if office is None:
            views = hub.views()
        else:
            one = hub.view(office) if OFFICE_ID.fullmatch(office) else None
            if one is None:
                return not_found()
            views = [one]
        offices = []
        for view in views:
            values = office_values(view, lang)
            values["charts"] = charts(view, lang, values["today"])
            offices.append(values)
        live = f"{request.url.path.rstrip('/')}/events?lang={lang}"
        html = render("public.html", request, lang, offices=offices, live=live, single=office)
        return HTMLResponse(html, headers=HEADERS)

    async def public_events(request: Request) -> Response:
        lang = pick(request.query_params.get("lang"))
        office = request.path_params.get("office")
        if office is not None and (not OFFICE_ID.fullmatch(office) or hub.view(office) is None):
            return not_found()

        def fragment(one: str) -> str | None:
            view = hub.view(one)
            return None if view is None else render("_office.html", request, lang, **office_values(view, lang))

        async def frames() -> AsyncIterator[str]:
            sent: dict[str, str] = {}
            watched = [office] if office is not None else [v.office for v in hub.views()]
            sub = hub.subscribe(office)
            try:
                while True:
                    for one in watched:
                        html = fragment(one)
                        if html is not None and sent.get(one) != html:
                            sent[one] = html
                            yield sse("office", html)
                    try:
                        changed, version = await asyncio.wait_for(sub.next(), keepalive_s)
                    except TimeoutError:
                        yield ": keepalive\n\n"
                        watched = [office] if office is not None else [v.office for v in hub.views()]
                        continue
                    if version == RELOAD:
                        sent.clear()
                        watched = [office] if office is not None else [v.office for v in hub.views()]
                    else:
                        watched = [changed]
            finally:
                sub.close()

        return _stream(frames())

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n", headers=HEADERS)

    async def service_worker(request: Request) -> Response:
        """The ticket page's service worker (static/sw.js: shows a Web Push alert), served beside
        the ticket pages: a worker's scope is at most its script's folder, `/<office>/t/`."""
        if not OFFICE_ID.fullmatch(request.path_params["office"]):
            return not_found()
        script = (HERE / "static" / "sw.js").read_bytes()
        return Response(script, media_type="application/javascript", headers=HEADERS)

    staff_routes = []
    if staff is not None:
        # Without a worker's desk (tests of the pages alone) commands wait, unsent, in one of their own.
        staff_routes = dashboard.routes(
            staff,
            hub,
            desk or CommandDesk(),
            nm,
            render,
            clock,
            HEADERS,
            keepalive_s,
            alerts.service if alerts is not None else None,
        )
    alert_api = alert_routes(alerts, hub, nm, lookup, HEADERS) if alerts is not None else []
    routes = [
        *staff_routes,
        *alert_api,
        Route("/", public_page),
        Route("/events", public_events),
        Route("/healthz", healthz),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        Route("/{office}/", public_page),
        Route("/{office}/events", public_events),
        Route("/{office}/t/sw.js", service_worker),  # before the ticket page's route
        Route("/{office}/t/{token}", ticket_page),
        Route("/{office}/t/{token}/events", ticket_events),
    ]
    return Starlette(routes=routes)


def sse(event: str, data: str) -> str:
    """One Server-Sent Event; each line of `data` its own `data:` line."""
    lines = "".join(f"data: {line}\n" for line in data.split("\n"))
    return f"event: {event}\n{lines}\n"


def _stream(frames: AsyncIterator[str]) -> StreamingResponse:
    headers = {**HEADERS, "X-Accel-Buffering": "no"}  # a proxy in front must not hold the events back
    return StreamingResponse(frames, media_type="text/event-stream", headers=headers)


async def _watch(
    hub: ViewHub, office: str, fragment: Callable[[], str | None], keepalive_s: float, ticket: str | None = None
) -> AsyncIterator[str | None]:
    """The fragment each time it changes (first: now), "" for a keep-alive, None once it is gone
    (and then nothing more). `ticket`: woken only by the views in which that ticket changed (and
    by the keep-alive, which renders again so that the minutes left follow the clock)."""
    sub = hub.subscribe(office, ticket)
    last: str | None = None
    try:
        while True:
            html = fragment()
            if html is None:
                yield None
                return
            if html != last:
                last = html
                yield html
            try:
                # asyncio.timeout, not wait_for: no task made per wake (a call wakes hundreds of pages).
                async with asyncio.timeout(keepalive_s):
                    await sub.next()
            except TimeoutError:
                yield ""
    finally:
        sub.close()

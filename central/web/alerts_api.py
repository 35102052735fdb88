"""The ticket page's alert settings over HTTP: `/<office>/t/<token>/alerts` (docs/alerts.md).

Owns the requests' checking and the answers; the subscriptions are the alerts service's
(central/alerts/service.py). GET says what the office offers and what this ticket chose; POST
(JSON) chooses "N people ahead" or "about M minutes before" and the channels — a Web Push
subscription, an e-mail address given with consent — and answers once it is stored; DELETE ends
them all. The page's own alert (sound, vibration, title) needs none of this: it runs in the page
and keeps nothing here.

The page's token is hashed and never kept, except inside an e-mail target: the mail's link to the
page, beside the address, deleted with it (docs/alerts.md, "What is kept"). An answer shows an
address masked. Only `application/json` bodies are read: a cross-site form cannot send one
without the browser asking first, and the Content-Security-Policy allows no other origin.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from central.alerts.engine import Choice, choice_problem
from central.alerts.mail import MailTarget, mask, valid_address
from central.alerts.webpush import PushTarget, subscription_problem
from central.web.hub import ViewHub
from central.web.i18n import Lang, pick
from central.web.names import Names
from central.web.view import OfficeView

if TYPE_CHECKING:  # the service imports the web's hub: only its types here
    from central.alerts.service import AlertService, Subscription

MAX_BODY = 8192  # a push subscription is ~400 bytes; an address at most 254
OPEN_STATUSES = ("waiting", "called", "held")  # a ticket that can still be alerted
STORE_WAIT_S = 10.0
Lookup = Callable[[Request], "tuple[OfficeView, str] | None"]


@dataclass(frozen=True, slots=True)
class AlertsWeb:
    """What the pages offer: the service, the VAPID public key (None: no Web Push) and the
    offices whose mail relay is configured (their [alerts.mail])."""

    service: AlertService
    push_key: str | None = None
    mail_offices: frozenset[str] = frozenset()


class BadRequest(Exception):
    pass


def alert_routes(alerts: AlertsWeb, hub: ViewHub, names: Names, lookup: Lookup, headers: dict[str, str]) -> list[Route]:
    def problem(status: int, message: str) -> Response:
        return JSONResponse({"error": message}, status, headers=headers)

    def offer(office: str) -> dict[str, Any]:
        settings = names.alert_settings(office)
        return {
            "ahead": {"default": settings.ahead, "min": settings.ahead_range[0], "max": settings.ahead_range[1]},
            "minutes": {
                "default": settings.minutes,
                "min": settings.minutes_range[0],
                "max": settings.minutes_range[1],
            },
            "push": {"offered": settings.push and alerts.push_key is not None, "key": alerts.push_key},
            "mail": {"offered": office in alerts.mail_offices},
        }

    def chosen(sub: Subscription | None) -> dict[str, Any] | None:
        if sub is None:
            return None
        mail = sub.targets.get("mail")
        return {
            "by": sub.watch.choice.by,
            "value": sub.watch.choice.value,
            "push": "push" in sub.targets,
            "mail": mask(MailTarget.decode(mail).to) if mail is not None else None,
            "sent": sorted({key.split(":")[0] for key in sub.watch.sent}),
        }

    async def read(request: Request) -> dict[str, Any]:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise BadRequest("the body must be application/json")
        body = await request.body()
        if len(body) > MAX_BODY:
            raise BadRequest(f"the body is over {MAX_BODY} bytes")
        try:
            data = json.loads(body)
        except ValueError:
            raise BadRequest("the body is not JSON") from None
        if not isinstance(data, dict):
            raise BadRequest("the body must be a JSON object")
        return data

    def targets_of(data: dict[str, Any], office: str, page: str) -> dict[str, str | None]:
        targets: dict[str, str | None] = {}
        if "push" in data:
            if data["push"] is None:
                targets["push"] = None
            elif not offer(office)["push"]["offered"]:
                raise BadRequest("Web Push is not offered here")
            elif (why := subscription_problem(data["push"])) is not None:
                raise BadRequest(f"push: {why}")
            else:
                targets["push"] = PushTarget.from_subscription(data["push"]).target
        if "mail" in data:
            mail = data["mail"]
            if mail is None:
                targets["mail"] = None
            elif office not in alerts.mail_offices:
                raise BadRequest("e-mail is not offered at this office")
            elif not isinstance(mail, dict) or mail.get("consent") is not True:
                raise BadRequest('mail: the consent must be given ("consent": true)')
            elif (address := valid_address(mail.get("address"))) is None:
                raise BadRequest("mail: not an e-mail address this office can send to")
            else:
                try:
                    targets["mail"] = MailTarget(address, page).encode()
                except ValueError as exc:  # the office's public_base_url is not a URL a mail can carry
                    raise BadRequest(f"e-mail cannot link to this page here: {exc}") from None
        return targets

    def page_url(request: Request, office: str) -> str:
        base = names.page_bases.get(office)
        token = request.path_params["token"]
        return f"{base}/t/{token}" if base else str(request.url.replace(query="")).removesuffix("/alerts")

    async def get(request: Request) -> Response:
        found = lookup(request)
        if found is None:
            return problem(404, "not found")
        view, digest = found
        sub = alerts.service.subscription(view.office, digest)
        return JSONResponse({**offer(view.office), "chosen": chosen(sub)}, headers=headers)

    async def post(request: Request) -> Response:
        found = lookup(request)
        if found is None:
            return problem(404, "not found")
        view, digest = found
        ticket = view.tickets[digest]
        if ticket.status not in OPEN_STATUSES or view.day is None:
            return problem(409, "this ticket's business is finished")
        try:
            data = await read(request)
            settings = names.alert_settings(view.office)
            if (why := choice_problem(data.get("by"), data.get("value"), settings)) is not None:
                raise BadRequest(why)
            targets = targets_of(data, view.office, page_url(request, view.office))
        except BadRequest as exc:
            return problem(400, str(exc))
        lang: Lang = pick(data.get("lang"))
        choice = Choice(data["by"], data["value"])
        future = alerts.service.subscribe(view.office, digest, view.day, lang, choice, targets)
        try:
            sub = await asyncio.wait_for(asyncio.wrap_future(future), STORE_WAIT_S)
        except Exception:  # the store refused or is too slow: nothing was confirmed
            return problem(503, "the alert could not be stored: please try again")
        return JSONResponse({**offer(view.office), "chosen": chosen(sub)}, headers=headers)

    async def delete(request: Request) -> Response:
        found = lookup(request)
        if found is None:
            return problem(404, "not found")
        view, digest = found
        try:
            await asyncio.wait_for(asyncio.wrap_future(alerts.service.unsubscribe(view.office, digest)), STORE_WAIT_S)
        except Exception:
            return problem(503, "the alert could not be removed: please try again")
        return Response(status_code=204, headers=headers)

    path = "/{office}/t/{token}/alerts"
    return [
        Route(path, get, methods=["GET"]),
        Route(path, post, methods=["POST"]),
        Route(path, delete, methods=["DELETE"]),
    ]

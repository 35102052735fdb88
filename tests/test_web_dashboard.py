"""The facilities dashboard (central/web/auth.py, central/web/dashboard.py,
central/web/commands.py, docs/web.md "Facilities dashboard"): scrypt-hashed accounts, sessions
that expire, CSRF tokens on every form, login limits, and the dashboard over HTTP — problems
first, with filters; remote commands handed to the worker and their acks shown, refused when
logged out, forged or malformed; the audit list; the live stream for signed-in staff only."""

from __future__ import annotations

import http.client
import io
import json
import logging
import re
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urlencode

import pytest

from central.web import ViewHub, WebServer
from central.web.auth import (
    FAILURES,
    IDLE_S,
    LOCK_S,
    SESSION_S,
    Limiter,
    Sessions,
    Staff,
    UsersError,
    csrf_ok,
    hash_password,
    read_users,
    verify_password,
    write_users,
)
from central.web.commands import (
    ACK_WAIT_S,
    KEEP_AUDIT,
    KEEP_COMMANDS,
    MAX_WAITING,
    CommandDesk,
    FormError,
    OfficeFacts,
    command_from_form,
)
from central.web.dashboard import LOGIN_COOKIE, SESSION_COOKIE
from central.web.view import CounterView, OfficeView, device_view
from central.worker import CentralWorker, WorkerConfig
from tests.central_support import KeptOutbox
from tests.conftest import TOKYO, run_cli
from tests.web_support import DAY, OFFICE, STAFF_PASSWORD, STAFF_USER, TOKENS, office_floor, served, staff_file


@dataclass
class FakeClock:
    t: float = 1000.0

    def __call__(self) -> float:
        return self.t


# -- passwords and the users file --------------------------------------------------------------------
def test_passwords_are_scrypt_hashed_with_a_salt_each_and_checked(tmp_path: Path) -> None:
    a, b = hash_password("same password!"), hash_password("same password!")
    assert a["kdf"] == "scrypt" and a["n"] >= 2**14 and a["r"] >= 8
    assert a["salt"] != b["salt"] and a["hash"] != b["hash"]  # a salt of its own per user
    assert verify_password("same password!", a) and not verify_password("same password?", a)
    assert "same password" not in json.dumps(a)

    path = staff_file(tmp_path, {"a": "first password", "b.c@d": "second password"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    users = read_users(path)
    assert set(users) == {"a", "b.c@d"} and verify_password("second password", users["b.c@d"])

    path.chmod(0o644)
    with pytest.raises(UsersError, match="others may read it"):
        read_users(path)
    path.chmod(0o600)
    for damage, why in (
        ({"n": 3}, "n must be"),
        ({"n": 2**15 + 2}, "power of 2"),
        ({"n": 2**24}, "n must be"),  # a damaged file cannot make a login take gigabytes
        ({"salt": "zz"}, "hex"),
    ):
        write_users(path, {"a": {**users["a"], **damage}})
        with pytest.raises(UsersError, match=why):
            read_users(path)
    write_users(path, {"no spaces": users["a"]})
    with pytest.raises(UsersError, match="user name"):
        read_users(path)


def test_the_users_file_is_read_again_when_it_changes_and_a_new_password_ends_sessions(tmp_path: Path) -> None:
    path = staff_file(tmp_path)
    staff = Staff.from_file(path)
    stamp = staff.check(STAFF_USER, STAFF_PASSWORD)
    assert stamp is not None and staff.check(STAFF_USER, "wrong password!!") is None
    assert staff.check("nobody", STAFF_PASSWORD) is None
    token, _ = staff.sessions.create(STAFF_USER, stamp)
    assert staff.current(token) is not None
    staff_file(tmp_path, {STAFF_USER: "a new password here", "other": "other password"})
    assert staff.check(STAFF_USER, "a new password here") is not None  # no restart needed
    assert staff.current(token) is None  # the old password's session has ended
    path.write_text("not json")
    assert staff.check("other", "other password") is not None  # the last good copy stays


# -- sessions and CSRF -------------------------------------------------------------------------------
def test_sessions_end_when_idle_and_after_their_lifetime() -> None:
    clock = FakeClock()
    sessions = Sessions(clock)
    token, session = sessions.create("a", "stamp")
    assert len(token) >= 40 and token not in str(sessions._by_key)  # held hashed only
    clock.t += IDLE_S - 1
    assert sessions.get(token) is session
    clock.t += IDLE_S + 1
    assert sessions.get(token) is None  # idle too long

    token, _ = sessions.create("a", "stamp")
    started = clock.t
    while clock.t - started < SESSION_S - IDLE_S / 2:
        clock.t += IDLE_S / 2
        assert sessions.get(token) is not None
    clock.t = started + SESSION_S
    assert sessions.get(token) is None  # in use, but 8 h since the login

    token, _ = sessions.create("a", "stamp")
    sessions.end(token)
    assert sessions.get(token) is None and sessions.get(None) is None and sessions.get("x" * 500) is None

    small = Sessions(clock, limit=3)
    tokens = [small.create("a", "s")[0] for _ in range(5)]
    assert len(small) == 3 and small.get(tokens[0]) is None and small.get(tokens[-1]) is not None


def test_csrf_tokens_are_per_session_and_compared_whole() -> None:
    sessions = Sessions(FakeClock())
    _, one = sessions.create("a", "s")
    _, two = sessions.create("a", "s")
    assert one.csrf != two.csrf and len(one.csrf) >= 40
    assert csrf_ok(one, one.csrf)
    assert not csrf_ok(one, two.csrf) and not csrf_ok(one, "") and not csrf_ok(one, None)
    assert not csrf_ok(one, one.csrf[:-1]) and not csrf_ok(one, one.csrf + "x") and not csrf_ok(one, "é")


# -- login limits -------------------------------------------------------------------------------------
def test_failed_logins_lock_a_key_for_a_minute_then_twice_as_long() -> None:
    clock = FakeClock()
    limiter = Limiter(clock)
    keys = ("user:a", "addr:10.0.0.1")
    for _ in range(FAILURES - 1):
        assert limiter.failed(keys) == []
    assert limiter.locked_for(keys) == 0
    assert limiter.failed(keys) == list(keys)
    assert limiter.locked_for(keys) == LOCK_S
    assert limiter.locked_for(["user:b", "addr:10.0.0.1"]) == LOCK_S  # the address is locked for every name
    assert limiter.locked_for(["user:a", "addr:10.0.0.2"]) == LOCK_S  # and the name from every address
    assert limiter.locked_for(["user:b", "addr:10.0.0.2"]) == 0
    clock.t += LOCK_S
    assert limiter.locked_for(keys) == 0
    for _ in range(FAILURES):
        limiter.failed(keys)
    assert limiter.locked_for(keys) == 2 * LOCK_S  # doubling
    clock.t += 2 * LOCK_S
    limiter.succeeded(keys)
    for _ in range(FAILURES - 1):
        limiter.failed(keys)
    assert limiter.locked_for(keys) == 0  # a success starts them afresh


# -- over HTTP ----------------------------------------------------------------------------------------
@dataclass
class Browser:
    """Just enough of a browser: a cookie jar, no redirects followed."""

    url: str
    cookies: dict[str, str] = field(default_factory=dict)
    last_set_cookie: list[str] = field(default_factory=list)

    def request(
        self, method: str, path: str, form: dict[str, str] | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], str]:
        host, port = self.url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        sent = dict(headers or {})
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form)
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body, sent)
            resp = conn.getresponse()
            self.last_set_cookie = resp.headers.get_all("set-cookie") or []
            for line in self.last_set_cookie:
                name, _, rest = line.partition("=")
                value = rest.split(";")[0]
                if "Max-Age=0" in line or value in ('""', ""):
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = value
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read().decode()
        finally:
            conn.close()

    def login_form(self) -> str:
        status, _, body = self.request("GET", "/login")
        assert status == 200
        found = re.search(r'name="csrf" value="([^"]+)"', body)
        assert found is not None
        return found.group(1)

    def login(self, user: str, password: str) -> tuple[int, dict[str, str], str]:
        csrf = self.login_form()
        return self.request("POST", "/login", {"csrf": csrf, "lang": "ja", "user": user, "password": password})

    def csrf(self) -> str:
        """The session's CSRF token, as the dashboard's forms carry it."""
        status, _, body = self.request("GET", "/dashboard")
        assert status == 200
        found = re.search(r'name="csrf" value="([^"]+)"', body)
        assert found is not None
        return found.group(1)


@contextmanager
def dashboard_server(tmp_path: Path, hub: ViewHub | None = None, **kwargs: object) -> Iterator[tuple[WebServer, Staff]]:
    staff = Staff.from_file(staff_file(tmp_path))
    with served(hub or ViewHub(), staff=staff, **kwargs) as server:
        yield server, staff


def test_logged_out_the_dashboard_sends_to_the_login_and_without_users_there_is_none(tmp_path: Path) -> None:
    with dashboard_server(tmp_path) as (server, _):
        status, headers, _ = Browser(server.url).request("GET", "/dashboard?lang=en")
        assert status == 303 and headers["location"] == "/login?lang=en"
        b = Browser(server.url)
        b.request("GET", "/dashboard")
        status, headers, body = b.request("GET", "/login")
        assert status == 200 and "ユーザー名" in body and "パスワード" in body
        assert 'type="password"' in body and headers["cache-control"] == "no-store"
        cookie = b.last_set_cookie[0]
        assert cookie.startswith(f"{LOGIN_COOKIE}=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    with served(ViewHub()) as server:
        status, headers, _ = Browser(server.url).request("GET", "/dashboard")
        assert status == 307 and headers["location"].endswith("/dashboard/")  # (Starlette's slash rule)
        assert Browser(server.url).request("GET", "/dashboard/")[0] == 404  # no office "dashboard", no dashboard


def test_login_refuses_alike_and_a_session_cookie_is_httponly_and_strict(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with dashboard_server(tmp_path) as (server, staff):
        b = Browser(server.url)
        status, _, wrong_password = b.login(STAFF_USER, "not the password")
        status2, _, no_such_user = b.login("nobody-at-all", "not the password")
        assert status == status2 == 401
        assert "ユーザー名またはパスワードが違います" in wrong_password

        def strip(body: str) -> str:
            return re.sub(r'name="csrf" value="[^"]+"', "", body)

        assert strip(wrong_password) == strip(no_such_user)  # the same answer for both
        assert SESSION_COOKIE not in b.cookies

        # A login form without its cookie (another site's form, an old tab): refused.
        fresh = Browser(server.url)
        form = {"csrf": "x" * 32, "user": STAFF_USER, "password": STAFF_PASSWORD}
        assert fresh.request("POST", "/login", form)[0] == 403
        csrf = fresh.login_form()
        cross = {"Sec-Fetch-Site": "cross-site"}
        assert fresh.request("POST", "/login", {**form, "csrf": csrf}, cross)[0] == 403

        status, headers, _ = b.login(STAFF_USER, STAFF_PASSWORD)
        assert status == 303 and headers["location"] == "/dashboard?lang=ja"
        session_cookie = next(c for c in b.last_set_cookie if c.startswith(SESSION_COOKIE))
        assert "HttpOnly" in session_cookie and "SameSite=strict" in session_cookie and "Path=/" in session_cookie
        assert "Secure" not in session_cookie  # plain http here; Secure over https (below)
        status, _, body = b.request("GET", "/dashboard")
        assert status == 200 and "施設管理ダッシュボード" in body and STAFF_USER in body
        token = b.cookies[SESSION_COOKIE]

        # Logging out needs the session's CSRF token.
        assert b.request("POST", "/logout", {"csrf": "forged", "lang": "ja"})[0] == 403
        assert b.request("GET", "/dashboard")[0] == 200
        csrf = re.search(r'name="csrf" value="([^"]+)"', body)
        assert csrf is not None
        status, headers, _ = b.request("POST", "/logout", {"csrf": csrf.group(1), "lang": "ja"})
        assert status == 303 and headers["location"] == "/login?lang=ja"
        assert staff.sessions.get(token) is None
        b.cookies[SESSION_COOKIE] = token  # the old cookie, kept: it opens nothing
        assert b.request("GET", "/dashboard")[0] == 303
        assert staff.secure is False
        staff.secure = True
        b.login(STAFF_USER, STAFF_PASSWORD)
        assert any("Secure" in c for c in b.last_set_cookie if c.startswith(SESSION_COOKIE))

    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert STAFF_PASSWORD not in logged and "not the password" not in logged and token not in logged
    assert f"{STAFF_USER} logged in" in logged and "nobody-at-all" not in logged


def test_repeated_failures_lock_the_login_for_a_while(tmp_path: Path) -> None:
    with dashboard_server(tmp_path) as (server, _):
        b = Browser(server.url)
        for _ in range(FAILURES):
            assert b.login(STAFF_USER, "guess guess guess")[0] == 401
        status, _, body = b.login(STAFF_USER, STAFF_PASSWORD)  # the right one, but locked: not even heard
        assert status == 429 and "しばらくログインできません" in body
        assert b.request("GET", "/dashboard")[0] == 303


def _view(office: str, gateway: str, **kw: object) -> OfficeView:
    at = datetime(2027, 3, 15, 9, 4, tzinfo=TOKYO)
    return OfficeView(office, 0, "2027-03-15", at, 10, (), (), gateway=gateway, **kw)  # type: ignore[arg-type]


def test_the_dashboard_shows_problems_first_and_filters(tmp_path: Path) -> None:
    hub = ViewHub()
    printer = device_view(
        {"device": "printer-1", "kind": "printer", "state": "online", "status": "paper_out", "last_seen": None}
    )
    pad = device_view(
        {
            "device": "0-3",
            "kind": "counter_pad",
            "state": "offline",
            "firmware": "1.0.3",
            "timeouts": 4,
            "failures": 0,
            "last_seen": "2027-03-15T08:58:12+09:00",
        }
    )
    assert pad.errors == (("timeouts", 4),) and printer.printer == "paper_out"
    hub.publish(_view("aaa-fine", "online", counters=(CounterView("1", "open", "A-001", ("move",)),)))
    fine = device_view({"device": "0-1", "kind": "dispenser", "state": "online"})
    hub.publish(_view("nerima", "online", devices=(fine,)))
    hub.publish(_view("oizumi", "offline", missing=((7, 7), (9, 10)), devices=(fine, printer, pad)))
    with dashboard_server(tmp_path, hub) as (server, _):
        b = Browser(server.url)
        b.login(STAFF_USER, STAFF_PASSWORD)
        _, _, body = b.request("GET", "/dashboard")
        order = re.findall(r'id="staff-([a-z-]+)"', body)
        assert order == ["oizumi", "aaa-fine", "nerima"]  # problems first, then by id
        assert "ゲートウェイがオフラインです" in body and "イベントが欠けています（7, 9-10）" in body
        assert "printer-1 の用紙がありません" in body and "0-3 がオフラインです" in body
        assert "08:58:12" in body and "1.0.3" in body and "timeouts 4" in body
        assert "3事務所のうち 1事務所に問題があります" in body
        # The problem device comes first among the office's devices.
        oizumi = body[body.index('id="staff-oizumi"') : body.index('id="staff-aaa-fine"')]
        assert re.findall(r'data-device="([^"]+)"', oizumi) == ["0-3", "printer-1", "0-1"]
        _, _, only = b.request("GET", "/dashboard?problems=1")
        assert re.findall(r'id="staff-([a-z-]+)"', only) == ["oizumi"]
        _, _, one = b.request("GET", "/dashboard?office=nerima&lang=en")
        assert re.findall(r'id="staff-([a-z-]+)"', one) == ["nerima"]
        assert "Facilities dashboard" in one and "Ward Office" in one  # the office's name, from its config
        assert '<option value="nerima" selected>' in one
        _, _, none = b.request("GET", "/dashboard?office=<script>")
        assert "<script>" not in none and "表示する事務所はありません" in none


def test_a_workers_view_has_the_gateway_and_the_counters(tmp_path: Path) -> None:
    with office_floor(tmp_path) as floor:
        floor.issue("Q0ZHc2k0b1pXb2RzYmVhX3Rva2Vu")
        floor.event("called", ticket="A-001", counter="5")
        view = floor.hub.view(OFFICE)
        assert view is not None and view.gateway == "unknown" and view.missing == ()
        counters = [(c.counter, c.status, c.serving) for c in view.counters]
        assert counters == [("5", "open", "A-001"), ("6", "open", None)]
        birth = {"v": 1, "office": OFFICE, "state": "online", "session": 1, "seq": floor.seq, "software": "t"}
        floor.worker.deliver(f"counterfloor/{OFFICE}/gateway", json.dumps(birth).encode())
        floor.worker.drain()
        view = floor.hub.view(OFFICE)
        assert view is not None and view.gateway == "online"  # at once, not at the next round
        death = {"v": 1, "office": OFFICE, "state": "offline", "session": 1}
        floor.worker.deliver(f"counterfloor/{OFFICE}/gateway", json.dumps(death).encode())
        floor.worker.drain()
        view = floor.hub.view(OFFICE)
        assert view is not None and view.gateway == "offline"


def test_devices_states_reach_the_dashboard_and_go_stale_with_their_gateway(tmp_path: Path) -> None:
    """central subscribes to devices/+: each device's retained state is kept per office, shown
    as the gateway said while it is online, stale when it is not, and cleared by an empty one."""
    with office_floor(tmp_path) as floor:
        floor.issue("Q0ZHc2k0b1pXb2RzYmVhX3Rva2Vu")
        birth = {"v": 1, "office": OFFICE, "state": "online", "session": 1, "seq": floor.seq, "software": "t"}
        floor.worker.deliver(f"counterfloor/{OFFICE}/gateway", json.dumps(birth).encode())
        pad = {"v": 1, "office": OFFICE, "session": 1, "device": "0-2", "kind": "counter_pad", "state": "online",
               "firmware": "1.0.3", "timeouts": 4, "failures": 0, "last_seen": "2027-03-15T09:00:12+09:00"}  # fmt: skip
        printer = {"v": 1, "office": OFFICE, "session": 1, "device": "entrance", "kind": "printer",
                   "state": "online", "status": "paper_out"}  # fmt: skip
        floor.worker.deliver(f"counterfloor/{OFFICE}/devices/0-2", json.dumps(pad).encode())
        floor.worker.deliver(f"counterfloor/{OFFICE}/devices/entrance", json.dumps(printer).encode())
        floor.worker.drain()
        view = floor.hub.view(OFFICE)
        assert view is not None
        shown = {d.device: d for d in view.devices}
        assert shown["0-2"].state == "online" and shown["0-2"].firmware == "1.0.3"
        assert shown["0-2"].errors == (("timeouts", 4),)
        assert shown["entrance"].printer == "paper_out"
        death = {"v": 1, "office": OFFICE, "state": "offline", "session": 1}
        floor.worker.deliver(f"counterfloor/{OFFICE}/gateway", json.dumps(death).encode())
        floor.worker.drain()
        view = floor.hub.view(OFFICE)
        assert view is not None and {d.state for d in view.devices} == {"stale"}
        floor.worker.deliver(f"counterfloor/{OFFICE}/devices/entrance", b"")  # taken out of the config
        floor.worker.drain()
        view = floor.hub.view(OFFICE)
        assert view is not None and [d.device for d in view.devices] == ["0-2"]
        floor.worker.deliver(f"counterfloor/{OFFICE}/devices/0-2", b"{not json")
        floor.worker.drain()
        view = floor.hub.view(OFFICE)
        assert view is not None and [d.firmware for d in view.devices] == ["1.0.3"]  # a bad one changes nothing


# -- the CLI ------------------------------------------------------------------------------------------
def test_users_are_added_and_changed_by_the_cli_reading_the_password_from_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "staff.json"

    def user(*argv: str, stdin: str = "") -> tuple[int, str, str]:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        return run_cli(capsys, "central", "user", *argv, "--users", str(path))

    code, out, _ = user("add", "kanri.tanaka", stdin="a long password here\n")
    assert code == 0 and "kanri.tanaka added to" in out
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and "a long password here" not in path.read_text()
    assert verify_password("a long password here", read_users(path)["kanri.tanaka"])
    code, _, err = user("add", "kanri.tanaka", stdin="another password\n")
    assert code == 2 and "already a user" in err
    code, _, err = user("add", "suzuki", stdin="short\n")
    assert code == 2 and "at least 12 characters" in err and "suzuki" not in read_users(path)
    code, _, err = user("add", "has space", stdin="a long password here\n")
    assert code == 2 and "user name" in err
    assert user("passwd", "kanri.tanaka", stdin="the new password\n")[0] == 0
    assert verify_password("the new password", read_users(path)["kanri.tanaka"])
    assert user("passwd", "nobody", stdin="the new password\n")[0] == 2
    assert user("remove", "kanri.tanaka")[0] == 0 and read_users(path) == {}

    base = ["central", "--broker", "mqtt://127.0.0.1:1", "--store", str(tmp_path / "c.db")]
    code, _, err = run_cli(capsys, *base, "--users", str(path))
    assert code == 2 and "--users" in err and "--http-port" in err
    code, _, err = run_cli(capsys, *base, "--http-port", "0", "--users", str(tmp_path / "none.json"))
    assert code == 2 and err.startswith("counterfloor central: --users:")
    code, _, err = run_cli(capsys, "central")
    assert code == 2 and "the following arguments are required: --broker" in err


# -- remote commands, their acks, the audit list --------------------------------------------------------
FACTS = OfficeFacts(frozenset({"5", "6"}), {"0-1": "dispenser", "0-5": "counter_pad", "printer-1": "printer"}, DAY)
SHA = "ab" * 32


def test_a_form_becomes_the_command_of_the_mqtt_schema_or_names_its_problem() -> None:
    def ok(**form: str) -> tuple[str, dict[str, object]]:
        return command_from_form(form, FACTS)

    assert ok(cmd="pause", counter="5") == ("pause", {"counter": "5"})
    assert ok(cmd="set_mode", date=DAY, mode="closed", reason_ja="臨時休業", reason_en="Closed today") == (
        "set_mode",
        {"date": DAY, "closed": True, "reason": {"ja": "臨時休業", "en": "Closed today"}},
    )
    assert ok(cmd="set_mode", date="2027-03-16", mode="evening", **{"from": "17:00", "to": "20:00"}) == (
        "set_mode",
        {"date": "2027-03-16", "mode": "evening", "hours": {"from": "17:00", "to": "20:00"}},
    )
    assert ok(cmd="clear_mode", date=DAY) == ("clear_mode", {"date": DAY})
    assert ok(cmd="reprint", ticket="A-001", printer="") == ("reprint", {"ticket": "A-001"})
    assert ok(cmd="dispenser_message", device="0-1", lines="本日は混雑しています\r\nBusy today\r\n") == (
        "dispenser_message",
        {"device": "0-1", "lines": ["本日は混雑しています", "Busy today"]},
    )
    assert ok(cmd="dispenser_message", device="", lines="") == ("dispenser_message", {"lines": []})
    assert ok(cmd="restart_device", device="0-5") == ("restart_device", {"device": "0-5"})
    assert ok(cmd="firmware_update", device="0-1", bundle_url="/srv/fw.json", sha256=SHA.upper()) == (
        "firmware_update",
        {"device": "0-1", "bundle_url": "/srv/fw.json", "sha256": SHA},
    )
    for form, key in (
        ({"cmd": "pause", "counter": "99"}, "cmd_error_counter"),
        ({"cmd": "format_disk"}, "cmd_error_command"),
        ({"cmd": "clear_mode", "date": "2027-02-30"}, "cmd_error_date"),
        ({"cmd": "clear_mode", "date": "20270316"}, "cmd_error_date"),
        ({"cmd": "clear_mode", "date": "2027-03-14"}, "cmd_error_past"),
        ({"cmd": "set_mode", "date": DAY, "mode": "party"}, "cmd_error_mode"),
        ({"cmd": "set_mode", "date": DAY, "mode": "office", "from": "17:00", "to": "09:00"}, "cmd_error_hours"),
        ({"cmd": "set_mode", "date": DAY, "mode": "closed", "from": "09:00", "to": "10:00"}, "cmd_error_closed_hours"),
        ({"cmd": "set_mode", "date": DAY, "mode": "closed", "reason_ja": "休み"}, "cmd_error_reason"),
        ({"cmd": "reprint", "ticket": "A 1"}, "cmd_error_ticket"),
        ({"cmd": "dispenser_message", "device": "0-5", "lines": "x"}, "cmd_error_not_dispenser"),
        ({"cmd": "dispenser_message", "lines": "1\n2\n3\n4\n5"}, "cmd_error_lines_many"),
        ({"cmd": "dispenser_message", "lines": "あ" * 21}, "cmd_error_line"),
        ({"cmd": "restart_device", "device": "0-9"}, "cmd_error_device"),
        ({"cmd": "restart_device", "device": "printer-1"}, "cmd_error_device"),  # not a bus device
        ({"cmd": "firmware_update", "device": "0-1", "bundle_url": "https://x/fw", "sha256": SHA}, "cmd_error_bundle"),
        ({"cmd": "firmware_update", "device": "0-1", "bundle_url": "/fw", "sha256": "abc"}, "cmd_error_sha256"),
    ):
        with pytest.raises(FormError) as caught:
            command_from_form(form, FACTS)
        assert caught.value.key == key, form


def test_the_desk_matches_acks_by_id_and_stays_bounded() -> None:
    clock = FakeClock()
    desk = CommandDesk(clock)
    first = desk.submit(OFFICE, "pause", {"counter": "5"}, STAFF_USER, False)
    assert [c.state for c in desk.commands(OFFICE)] == ["queued"]
    ((office, request, payload),) = desk.outgoing()
    assert (office, request) == (OFFICE, first) and desk.outgoing() == []
    sent = json.loads(payload)
    assert sent == {"v": 1, "id": first, "office": OFFICE, "cmd": "pause", "counter": "5", "by": STAFF_USER}
    desk.sent(first, True)
    assert desk.next_deadline() == clock.t + ACK_WAIT_S
    clock.t += ACK_WAIT_S
    assert desk.commands(OFFICE)[0].state == "late"  # no answer yet; a late ack still counts
    assert not desk.answer(OFFICE, {"id": "central-0-abcd-1", "ok": True})  # the worker's replay: not ours
    assert desk.answer(OFFICE, {"id": f"{desk.prefix}999", "ok": True})  # ours, forgotten: dropped
    assert desk.answer(OFFICE, {"id": first, "ok": True, "output": "counter 5 paused\n"})
    shown = desk.commands(OFFICE)[0]
    assert (shown.state, shown.detail, shown.acks) == ("ok", "counter 5 paused", 1)
    assert desk.next_deadline() is None

    for n in range(KEEP_COMMANDS + 5):
        desk.submit(OFFICE, "resume", {"counter": str(n)}, STAFF_USER, True)
    assert len(desk.commands(OFFICE)) == KEEP_COMMANDS and first not in {c.id for c in desk.commands(OFFICE)}
    desk.outgoing()
    for _ in range(MAX_WAITING):
        desk.submit("oizumi", "pause", {"counter": "1"}, STAFF_USER, False)
    with pytest.raises(FormError, match="cmd_error_busy"):  # the worker is not taking them: refused, not kept
        desk.submit("oizumi", "pause", {"counter": "1"}, STAFF_USER, False)

    def audit(seq: int, day: str = DAY) -> dict[str, object]:
        return {"type": "remote_command", "seq": seq, "ts": f"{day}T10:00:00.000+09:00", "id": f"x{seq}",
                "cmd": "pause", "sender": STAFF_USER, "ok": True, "error": None}  # fmt: skip

    desk.events(OFFICE, [audit(seq) for seq in range(1, KEEP_AUDIT + 11)] + [{"type": "called", "seq": 999}])
    desk.events(OFFICE, [audit(3)])  # a replay's repeat
    kept = desk.audit(OFFICE)
    assert [a.seq for a in kept] == list(range(KEEP_AUDIT + 10, 10, -1))  # newest first, the last 50
    desk.events(OFFICE, [audit(2000, "2027-03-16")])
    desk.events(OFFICE, [audit(1500)])  # a late one of yesterday
    assert [a.seq for a in desk.audit(OFFICE)] == [2000]  # a new business day starts the list


def _command_rows(body: str, office: str = OFFICE) -> list[tuple[str, str, str]]:
    """(id, cmd, state) of the office's commands as the page lists them."""
    part = body[body.index(f'id="cmds-{office}"') : body.index(f'id="audit-{office}"')]
    return re.findall(r'<tr data-id="([^"]+)" data-cmd="([^"]+)" data-state="([^"]+)"', part)


def test_a_command_goes_out_through_the_worker_and_its_acks_and_audit_come_back(tmp_path: Path) -> None:
    clock = FakeClock()
    desk = CommandDesk(clock)
    with office_floor(tmp_path, desk) as floor, dashboard_server(tmp_path, floor.hub, desk=desk) as (server, _):
        floor.issue(TOKENS[0])
        outbox = floor.worker.outbox
        assert isinstance(outbox, KeptOutbox)
        b = Browser(server.url)
        b.login(STAFF_USER, STAFF_PASSWORD)
        _, _, body = b.request("GET", "/dashboard")
        assert 'data-form="counter"' in body and "一時休止" in body and "操作の記録（本日）" in body
        status, headers, _ = b.request(
            "POST",
            "/dashboard/command",
            {"csrf": b.csrf(), "lang": "ja", "office": OFFICE, "cmd": "pause", "counter": "5"},
        )
        assert status == 303 and headers["location"] == f"/dashboard?lang=ja#staff-{OFFICE}"
        ((request, _, state),) = _command_rows(b.request("GET", "/dashboard")[2])
        assert state == "queued" and outbox.commands() == []  # the web thread publishes nothing itself

        floor.worker.drain()  # the worker's turn: it takes the command and publishes it
        ((topic, payload, retain),) = [s for s in outbox.sent if s[0].endswith("/cmd")]
        assert (topic, retain) == (f"counterfloor/{OFFICE}/cmd", False)
        assert json.loads(payload) == {
            "v": 1,
            "id": request,
            "office": OFFICE,
            "cmd": "pause",
            "counter": "5",
            "by": STAFF_USER,
        }
        body = b.request("GET", "/dashboard")[2]
        assert _command_rows(body) == [(request, "pause", "pending")] and "窓口を一時休止" in body
        # The gateway had not been heard from: sent anyway, and the page says it may not arrive.
        assert "送信時、ゲートウェイはオフラインでした" in body

        def ack(request: str, **answer: object) -> None:
            message = {"v": 1, "office": OFFICE, "id": request, **answer}
            floor.worker.deliver(f"counterfloor/{OFFICE}/ack", json.dumps(message).encode())
            floor.worker.drain()

        ack(request, ok=True, output="counter 5 paused\n", refused=None, events=[])
        floor.event("counter_paused", counter="5")
        floor.event("remote_command", id=request, cmd="pause", sender=STAFF_USER, ok=True, error=None)
        body = b.request("GET", "/dashboard")[2]
        assert _command_rows(body) == [(request, "pause", "ok")] and "counter 5 paused" in body
        assert "送信時、ゲートウェイはオフラインでした" not in body  # answered: the warning is moot
        audit = body[body.index(f'id="audit-{OFFICE}"') :]
        assert re.findall(r'data-id="([^"]+)" data-sender="([^"]+)" data-ok="(\w+)"', audit) == [
            (request, STAFF_USER, "true")
        ]
        assert 'data-counter="5" data-status="paused"' in body

        # An error, with its text; a firmware update with its progress; a command unanswered.
        birth = {"v": 1, "office": OFFICE, "state": "online", "session": 1, "seq": floor.seq, "software": "t"}
        floor.worker.deliver(f"counterfloor/{OFFICE}/gateway", json.dumps(birth).encode())
        pad = {"v": 1, "office": OFFICE, "session": 1, "device": "0-5", "kind": "counter_pad", "state": "online"}
        floor.worker.deliver(f"counterfloor/{OFFICE}/devices/0-5", json.dumps(pad).encode())
        floor.worker.drain()
        for form in (
            {"cmd": "reprint", "ticket": "A-999"},
            {"cmd": "firmware_update", "device": "0-5", "bundle_url": "/srv/pad.json", "sha256": SHA},
            {"cmd": "resume", "counter": "6"},
        ):
            form = {"csrf": b.csrf(), "lang": "en", "office": OFFICE, **form}
            assert b.request("POST", "/dashboard/command", form)[0] == 303
        floor.worker.drain()
        resume, firmware, reprint, _ = (r[0] for r in _command_rows(b.request("GET", "/dashboard")[2]))
        ack(reprint, ok=False, kind="refused", error="no ticket A-999 today")
        ack(firmware, ok=True, pending=True, state="sending", progress=0.5, version="1.1.0")
        body = b.request("GET", "/dashboard?lang=en")[2]
        assert _command_rows(body) == [(resume, "resume", "pending"), (firmware, "firmware_update", "pending"),
                                       (reprint, "reprint", "error"), (request, "pause", "ok")]  # fmt: skip
        assert "no ticket A-999 today" in body and "50%" in body and "sending" in body
        assert "The gateway was offline" not in body  # it was online for these
        clock.t += ACK_WAIT_S
        body = b.request("GET", "/dashboard?lang=en")[2]
        assert _command_rows(body)[:2] == [(resume, "resume", "late"), (firmware, "firmware_update", "pending")]
        assert "no answer yet" in body  # the firmware update is under way: it has answered
        ack(firmware, ok=True, state="installed", version="1.1.0")
        ack(resume, ok=True, output="counter 6 resumed\n")
        body = b.request("GET", "/dashboard?lang=en")[2]
        assert [r[2] for r in _command_rows(body)] == ["ok", "ok", "error", "ok"] and "installed 1.1.0" in body
        assert len(outbox.commands()) == 4


def test_commands_are_refused_logged_out_forged_or_malformed_and_nothing_is_sent(tmp_path: Path) -> None:
    desk = CommandDesk()
    with office_floor(tmp_path, desk) as floor, dashboard_server(tmp_path, floor.hub, desk=desk) as (server, _):
        outbox = floor.worker.outbox
        assert isinstance(outbox, KeptOutbox)
        good = {"lang": "ja", "office": OFFICE, "cmd": "pause", "counter": "5"}
        status, _, body = Browser(server.url).request("POST", "/dashboard/command", {**good, "csrf": "x" * 43})
        assert status == 403 and "ログインしてください" in body  # logged out
        b = Browser(server.url)
        b.login(STAFF_USER, STAFF_PASSWORD)
        csrf = b.csrf()
        assert b.request("POST", "/dashboard/command", {**good, "csrf": "forged"})[0] == 403
        assert b.request("POST", "/dashboard/command", good)[0] == 403  # no token at all
        cross = {"Sec-Fetch-Site": "cross-site"}
        assert b.request("POST", "/dashboard/command", {**good, "csrf": csrf}, cross)[0] == 403
        for form, says in (
            ({"counter": "99"}, "窓口「99」はこの事務所にありません"),
            ({"office": "nowhere"}, "事務所「nowhere」はこのダッシュボードにありません"),
            ({"cmd": "clear_mode", "date": "2027-02-30"}, "日付「2027-02-30」が正しくありません"),
            ({"cmd": "restart_device", "device": "0-1"}, "機器「0-1」はこの事務所にありません"),
            (
                {"cmd": "set_mode", "date": "2027-03-16", "mode": "office", "from": "18:00", "to": "08:00"},
                "時間「18:00〜08:00」",
            ),
        ):
            status, _, body = b.request("POST", "/dashboard/command", {**good, "csrf": csrf, **form})
            assert status == 400 and says in body and "何も送っていません" in body, form
            assert 'id="cmd-error" role="alert"' in body
        floor.worker.drain()
        assert outbox.commands() == [] and desk.commands(OFFICE) == []  # nothing sent, nothing kept
        assert b.request("POST", "/dashboard/command", {**good, "csrf": csrf})[0] == 303  # the same, well formed
        floor.worker.drain()
        assert [c["cmd"] for c in outbox.commands()] == ["pause"]


class EventStream:
    """A Server-Sent Events stream read line by line (a socket timeout bounds every wait)."""

    def __init__(self, url: str, path: str, cookies: dict[str, str]) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=10)
        cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
        self.conn.request("GET", path, headers={"Cookie": cookie} if cookie else {})
        self.response = self.conn.getresponse()

    def until(self, what: str, match: Callable[[str, str], bool]) -> None:
        """Read events until one (name, data) matches."""
        deadline = time.monotonic() + 10
        name, data = "", []
        while time.monotonic() < deadline:
            line = self.response.fp.readline().decode()
            if not line:
                break
            if line.startswith("event: "):
                name = line[7:].strip()
            elif line.startswith("data: "):
                data.append(line[6:].rstrip("\n"))
            elif line == "\n":
                if match(name, "\n".join(data)):
                    return
                name, data = "", []
        raise AssertionError(f"no event: {what}")

    def close(self) -> None:
        self.conn.close()


def test_the_live_stream_is_for_signed_in_staff_and_sends_what_changed(tmp_path: Path) -> None:
    desk = CommandDesk()
    with (
        office_floor(tmp_path, desk) as floor,
        dashboard_server(tmp_path, floor.hub, desk=desk, keepalive_s=0.2) as (server, _),
    ):
        status, _, body = Browser(server.url).request("GET", "/dashboard/events?lang=ja")
        assert status == 403 and "log in" in body  # logged out: no stream
        b = Browser(server.url)
        b.login(STAFF_USER, STAFF_PASSWORD)
        body = b.request("GET", "/dashboard")[2]
        assert 'data-live="/dashboard/events?lang=ja&amp;office="' in body
        stream = EventStream(server.url, "/dashboard/events?lang=ja", b.cookies)
        try:
            assert stream.response.status == 200
            assert stream.response.headers["content-type"].startswith("text/event-stream")
            stream.until("the office's state", lambda e, d: e == "dashboard" and f'id="live-{OFFICE}"' in d)
            floor.event("counter_paused", counter="6")  # a view changes: its office's part comes again
            stream.until(
                "counter 6 paused",
                lambda e, d: e == "dashboard" and 'data-counter="6" data-status="paused"' in d,
            )
            csrf = b.csrf()
            form = {"csrf": csrf, "lang": "ja", "office": OFFICE, "cmd": "resume", "counter": "6"}
            assert b.request("POST", "/dashboard/command", form)[0] == 303
            stream.until("the command", lambda e, d: f'id="cmds-{OFFICE}"' in d and 'data-state="queued"' in d)
            floor.worker.drain()
            stream.until("sent", lambda e, d: f'id="cmds-{OFFICE}"' in d and 'data-state="pending"' in d)
            b.request("POST", "/logout", {"csrf": csrf, "lang": "ja"})
            stream.until("the session's end", lambda e, d: e == "gone")
        finally:
            stream.close()


def test_the_audit_list_is_rebuilt_from_the_store_when_central_restarts(tmp_path: Path) -> None:
    with office_floor(tmp_path) as floor:
        error = "counter 6 is serving A-001"
        floor.event("remote_command", id="x1", cmd="close", sender=STAFF_USER, ok=False, error=error)
    desk = CommandDesk()
    worker = CentralWorker(WorkerConfig(str(tmp_path / "central.db"), train=False), KeptOutbox(), desk=desk)
    worker.start()
    try:
        (audit,) = desk.audit(OFFICE)
        assert (audit.id, audit.cmd, audit.sender, audit.ok, audit.error) == ("x1", "close", STAFF_USER, False, error)
    finally:
        worker.close()

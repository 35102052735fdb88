"""The facilities dashboard's foundation (central/web/auth.py, central/web/dashboard.py,
docs/web.md "Facilities dashboard"): scrypt-hashed accounts, sessions that expire, CSRF tokens
on every form, login limits, and the dashboard over HTTP — problems first, with filters."""

from __future__ import annotations

import http.client
import io
import json
import logging
import re
import stat
from collections.abc import Iterator
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
from central.web.dashboard import LOGIN_COOKIE, SESSION_COOKIE
from central.web.view import CounterView, OfficeView, device_view
from tests.conftest import TOKYO, run_cli
from tests.web_support import OFFICE, STAFF_PASSWORD, STAFF_USER, office_floor, served, staff_file


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


@contextmanager
def dashboard_server(tmp_path: Path, hub: ViewHub | None = None) -> Iterator[tuple[WebServer, Staff]]:
    staff = Staff.from_file(staff_file(tmp_path))
    with served(hub or ViewHub(), staff=staff) as server:
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

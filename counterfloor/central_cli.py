"""`counterfloor central`: the central wait-time service (docs/operations.md, "Central").

A thin shell over central.service: the arguments, the broker login (gateway.mqtt_client, as for
every MQTT command), the store checked once before any worker starts. Bad arguments, a broker
setting or a store that cannot work are one line, `counterfloor central: …`, exit status 2 (1 for
a store that cannot be opened); SIGTERM or Ctrl-C stop it cleanly (exit 0).
"""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from pathlib import Path
from typing import NoReturn, TextIO

from central.learning import DEFAULT_HISTORY_DAYS
from central.service import LOG_FORMAT, WebOptions, run_central
from central.store import StoreError, StoreURLError, open_store
from central.web.auth import USER, UsersError, hash_password, password_problem, read_users, write_users
from central.worker import WorkerConfig
from gateway.metrics import DEFAULT_ADDRESS, _port, add_metrics_options
from gateway.mqtt_client import BrokerConfigError, broker_login
from office.config import BrokerSettings, ConfigError, load_config

DEFAULT_STORE = "central.db"
EXIT_USAGE, EXIT_FAILED = 2, 1
MAX_WORKERS = 64


class CentralError(Exception):
    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def _fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    sys.stderr.write(f"counterfloor central: {message}\n")
    raise SystemExit(code)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "central",
        help="the central service: every office's events from MQTT, stored, and wait estimates published",
        description="Subscribe to every office's events on the broker, store them, and publish per-service "
        "and per-ticket wait estimates (docs/operations.md, 'Central'; topics in docs/mqtt.md).",
    )
    p.error = _fail  # type: ignore[method-assign]  # usage errors too: one line
    # Not required by argparse: `central user …` needs none (run() asks for it otherwise).
    p.add_argument("--broker", metavar="URL", help="mqtt://host[:port] or mqtts://host[:port] (required)")
    p.add_argument(
        "--broker-auth",
        type=Path,
        metavar="FILE",
        help="central's broker account: `central:password` (or the password) on the first line, mode 600",
    )
    p.add_argument("--broker-ca", type=Path, metavar="FILE", help="the CA that signed the broker's certificate")
    p.add_argument("--broker-cert", type=Path, metavar="FILE", help="central's client certificate (mqtts://)")
    p.add_argument("--broker-key", type=Path, metavar="FILE", help="its private key")
    p.add_argument(
        "--store",
        default=DEFAULT_STORE,
        metavar="URL",
        help=f"the event store: a SQLite file path or sqlite:///abs/path.db (one file), a folder path ending in / "
        f"or sqlite:///abs/folder/ (a SQLite file per office: for more than one worker), or "
        f"postgresql://user@host:port/db (default: {DEFAULT_STORE} in the working directory)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="offices are partitioned over N worker processes by crc32(office) %% N (default 1)",
    )
    p.add_argument(
        "--run-workers",
        metavar="LIST",
        help="the worker indexes this host runs, e.g. 0-3 or 0,2 (default: all N); the other hosts run the rest "
        "with the same --workers",
    )
    p.add_argument(
        "--history-days",
        type=int,
        default=DEFAULT_HISTORY_DAYS,
        metavar="D",
        help=f"each office's predictor learns from its stored days in the D calendar days before today "
        f"(default {DEFAULT_HISTORY_DAYS}); retrained at each new business day",
    )
    add_metrics_options(p, "per worker: events stored, lag, estimates, the store; worker i on PORT + i")
    p.add_argument(
        "--http-port",
        type=_port,
        metavar="PORT",
        help="serve the residents' pages (the congestion page, ticket pages; docs/web.md) on "
        "http://ADDRESS:PORT/ (default: none); worker i on PORT + i, each for its offices",
    )
    p.add_argument(
        "--http-address",
        default=DEFAULT_ADDRESS,
        metavar="ADDRESS",
        help=f"the address the pages listen on (default {DEFAULT_ADDRESS}: a reverse proxy in front)",
    )
    p.add_argument(
        "--office-config",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="an office's config file, for the names its pages show (repeat for each office; default: ids)",
    )
    p.add_argument(
        "--users",
        type=Path,
        metavar="FILE",
        help="the facilities staff's accounts (`counterfloor central user add`): serves the dashboard "
        "/dashboard with the pages (docs/web.md); default: no dashboard",
    )
    p.add_argument(
        "--push-key",
        type=Path,
        metavar="FILE",
        help="the VAPID private key of the residents' Web Push alerts (made, mode 600, if absent; "
        "keep it: live subscriptions are bound to it); default: no Web Push (docs/alerts.md)",
    )
    p.add_argument(
        "--push-contact",
        metavar="URI",
        help="with --push-key: the operator's contact the push services see (mailto:… or https://…)",
    )
    users = p.add_subparsers(dest="central_command", metavar="user")
    u = users.add_parser("user", help="add a facilities user, set a password, remove a user")
    u.error = _fail  # type: ignore[method-assign]
    u.add_argument("action", choices=["add", "passwd", "remove"])
    u.add_argument("name", help="the user name: 1-64 of A-Za-z0-9._@:- (it names them in the audit)")
    u.add_argument("--users", type=Path, required=True, metavar="FILE", help="the users file (made mode 600)")
    p.set_defaults(func=run)


def parse_indexes(text: str | None, workers: int) -> list[int]:
    """`--run-workers`: "0-3", "0,2,5" or both mixed; every index below `workers`."""
    if text is None:
        return list(range(workers))
    found: set[int] = set()
    for part in text.split(","):
        first, sep, last = part.strip().partition("-")
        try:
            a = int(first)
            b = int(last) if sep else a
        except ValueError:
            raise CentralError(f"--run-workers: {part.strip()!r} is not an index or a range like 0-3") from None
        if not 0 <= a <= b < workers:
            raise CentralError(f"--run-workers: {part.strip()!r} is not within 0-{workers - 1} (--workers {workers})")
        found.update(range(a, b + 1))
    return sorted(found)


def config_from(args: argparse.Namespace) -> tuple[WorkerConfig, list[int]]:
    if not 1 <= args.workers <= MAX_WORKERS:
        raise CentralError(f"--workers must be 1-{MAX_WORKERS} (got {args.workers})")
    if args.history_days < 0:
        raise CentralError(f"--history-days must be 0 or more (got {args.history_days})")
    indexes = parse_indexes(args.run_workers, args.workers)
    settings = BrokerSettings(
        ca=str(args.broker_ca) if args.broker_ca else None,
        cert=str(args.broker_cert) if args.broker_cert else None,
        key=str(args.broker_key) if args.broker_key else None,
    )
    try:
        login = broker_login(settings, url=args.broker, auth_file=args.broker_auth)
    except BrokerConfigError as exc:
        raise CentralError(str(exc)) from None
    config = WorkerConfig(args.store, 0, args.workers, login, args.history_days)
    return config, indexes


def web_from(args: argparse.Namespace) -> WebOptions | None:
    for path in args.office_config:  # read once here: a bad file is one line now
        try:
            load_config(path)
        except (ConfigError, OSError) as exc:
            raise CentralError(f"--office-config: {exc}") from None
    if args.users is not None:
        try:  # read once here too: a bad file is one line now
            read_users(args.users)
        except UsersError as exc:
            raise CentralError(f"--users: {exc}") from None
    if args.http_port is None:
        if args.office_config or args.users:
            raise CentralError("--office-config and --users are for the pages: they need --http-port")
        return None
    users = str(args.users) if args.users is not None else None
    push_key = str(args.push_key) if args.push_key is not None else None
    check_push(push_key, args.push_contact)
    configs = tuple(str(p) for p in args.office_config)
    return WebOptions(
        args.http_port, args.http_address, configs, users=users, push_key=push_key, push_contact=args.push_contact
    )


def check_push(key: str | None, contact: str | None) -> None:
    """The push options, checked once here: a bad one is one line now, not a worker's crash."""
    from central.alerts.webpush import PushChannel, VapidKeyError, VapidKeys

    if key is None:
        if contact is not None:
            raise CentralError("--push-contact is for Web Push: it needs --push-key")
        return
    if contact is None:
        raise CentralError("--push-key needs --push-contact (mailto:… or https://…): push services require one")
    try:
        PushChannel(VapidKeys.load_or_create(key), contact)
    except (VapidKeyError, ValueError, OSError) as exc:
        raise CentralError(f"--push-key/--push-contact: {exc}") from None


def read_password(stdin: TextIO) -> str:
    """Typed twice without echo at a terminal; else the first line of stdin (a script's pipe)."""
    if stdin.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            raise CentralError("the two passwords differ; nothing changed")
        return first
    return stdin.readline().removesuffix("\n").removesuffix("\r")


def run_user(args: argparse.Namespace, out: TextIO) -> int:
    """`counterfloor central user add|passwd|remove NAME --users FILE`."""
    name, path = args.name, args.users
    if not USER.fullmatch(name):
        raise CentralError(f"user name {name!r}: 1-64 of A-Za-z0-9._@:-")
    try:
        users = read_users(path) if path.exists() else {}
        if args.action == "add" and name in users:
            raise CentralError(f"{name} is already a user of {path}: `user passwd` sets a new password")
        if args.action != "add" and name not in users:
            raise CentralError(f"{name} is not a user of {path}")
        if args.action == "remove":
            del users[name]
        else:
            password = read_password(sys.stdin)
            problem = password_problem(password)
            if problem is not None:
                raise CentralError(f"{problem}; nothing changed")
            users[name] = hash_password(password)
        write_users(path, users)
    except UsersError as exc:
        raise CentralError(str(exc), EXIT_FAILED) from None
    done = {"add": "added to", "passwd": "has a new password in", "remove": "removed from"}[args.action]
    out.write(f"{name} {done} {path} (a running central reads it at the next request)\n")
    return 0


def run(args: argparse.Namespace, out: TextIO) -> int:
    try:
        if args.central_command == "user":
            return run_user(args, out)
        if args.broker is None:
            raise CentralError("the following arguments are required: --broker")
        config, indexes = config_from(args)
        web = web_from(args)
        try:  # once here, so that a bad store is one line now, not a worker restarting for ever
            open_store(config.store_url).close()
        except StoreURLError as exc:
            raise CentralError(f"--store: {exc}") from None
        except StoreError as exc:
            raise CentralError(str(exc), EXIT_FAILED) from None
    except CentralError as exc:
        _fail(str(exc), exc.code)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    return run_central(config, indexes, args.metrics_port, args.metrics_address, web)

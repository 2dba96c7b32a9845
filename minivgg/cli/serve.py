"""``minivgg serve`` (the studio: a local web page over ``minivgg.studio``) and ``minivgg samples``
(the shipped sample paintings, usable by name as ``transfer``'s images)."""

from __future__ import annotations

import ipaddress
import os
import secrets
import socket
import sys
import webbrowser

from ..errors import UserError
from ..run.samples import describe

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def add_cli(sub) -> None:
    p = sub.add_parser(
        "serve", help="the studio: a local web page to pick images, paint regions and watch runs"
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only; anything else is reachable "
        "from the network and prints a warning)",
    )
    p.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    p.add_argument(
        "--runs",
        default="minivgg-runs",
        help="folder of the runs and their gallery (default ./minivgg-runs; created if missing)",
    )
    p.add_argument("--open", action="store_true", help="open the page in the default browser")
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser("samples", help="list the sample paintings usable by name as style images")
    p.set_defaults(func=_cmd_samples)


def _cmd_samples(args) -> int:
    for line in describe():
        print(line)
    return 0


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port`` (0: a free port); UserError (one sentence) for a bad
    host or port, or one that is in use.

    Examples
    --------
    >>> sock = bind("127.0.0.1", 0)
    >>> sock.getsockname()[1] > 0
    True
    >>> bind("127.0.0.1", sock.getsockname()[1])
    Traceback (most recent call last):
    ...
    minivgg.errors.UserError: port ... on 127.0.0.1 is in use by another program; pass another --port (0 picks a free one)
    >>> sock.close()
    """
    if not host.strip():
        raise UserError("--host must name an address, such as 127.0.0.1")
    if not 0 <= port <= 65535:
        raise UserError(f"--port must be between 0 and 65535, got {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise UserError(f"--host {host!r} is not an address of this machine ({exc})") from None
    infos.sort(key=lambda info: info[0] != socket.AF_INET)  # localhost: 127.0.0.1, as printed
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if os.name != "nt":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno in (98, 48, 10048):  # EADDRINUSE on Linux, macOS, Windows
            raise UserError(
                f"port {port} on {host} is in use by another program; pass another --port (0 picks a free one)"
            ) from None
        raise UserError(f"cannot listen on {host} port {port} ({exc.strerror or exc})") from None
    return sock


def _is_local(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _cmd_serve(args) -> int:
    try:
        import uvicorn

        from ..studio.app import create_app
    except ImportError:
        raise UserError(
            "the studio needs Starlette and uvicorn; install them with: pip install 'minivgg[web]'"
        ) from None
    from ..studio.runs import open_runs_folder

    sock = bind(args.host, args.port)
    try:
        runs_folder = open_runs_folder(args.runs)
    except UserError:
        sock.close()
        raise
    port = sock.getsockname()[1]
    token = secrets.token_urlsafe(24)
    hosts = {*LOCAL_HOSTS, args.host}
    if not _is_local(args.host):
        hosts |= {socket.gethostname(), socket.getfqdn()}
        print(
            f"minivgg: warning: listening on {args.host}, reachable from other machines; anyone with "
            "the URL's token can run jobs and read the runs folder",
            file=sys.stderr,
        )
    shown = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host
    shown = f"[{shown}]" if ":" in shown else shown
    url = f"http://{shown}:{port}/?token={token}"
    app = create_app(runs_folder, token, hosts=sorted(hosts))
    config = uvicorn.Config(
        app,
        log_level="warning",
        timeout_graceful_shutdown=1,
        access_log=False,
    )
    hub = app.state.hub

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame):  # Ctrl-C: end the event streams first, then shut down
            hub.end_streams()
            super().handle_exit(sig, frame)

    server = Server(config)
    print(f"minivgg studio: {url}\nruns folder: {runs_folder}\nCtrl-C stops the server", flush=True)
    if args.open:
        webbrowser.open(url)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it caught once it has shut down
        print("minivgg studio: stopped", file=sys.stderr, flush=True)
        raise
    return 0

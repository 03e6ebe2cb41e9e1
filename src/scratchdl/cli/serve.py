"""``scratchdl serve``: the web page that looks inside the networks (scratchdl.serve).

    scratchdl serve [--model PATH ...] [--runs DIR] [--host 127.0.0.1] [--port 8000]
                    [--allow-host NAME ...] [--max-jobs N]

With no arguments it serves the SimpleConvNet shipped in the package, offline. It listens on
127.0.0.1 unless told otherwise; another --host prints a warning, since the server has no
login. It answers only to the Host names of this machine and the listen address, plus those
given with --allow-host (middleware.AllowedHosts: against DNS rebinding). The socket is bound
here, before uvicorn starts, so that a port in use ends in one line and exit status 2 like
every other user error (cli.main); Ctrl-C stops it cleanly, and the training jobs of the
Train tab (serve.jobs) with their checkpoints written.

Part of the command line: ``cli/__init__.py`` holds the parser and ``main``; FastAPI, uvicorn and
Pillow are imported only when the command runs.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import socket
import sys

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
# connections uvicorn holds at once, a backstop (beyond it uvicorn answers a plain-text 503):
# of them at most half wait for a request (serve.connections: the longest waiting is closed
# for a new one), so the other half serve requests; each is a file descriptor, and 400 stay
# well inside the usual limit of 1024. The bodies held in memory are bounded by safety.Bodies.
MAX_CONNECTIONS = 400
KEEP_ALIVE_SECONDS = 5
MAX_HEAD_BYTES = 16 * 1024  # a request's line and headers (h11's default, named here)


def port_number(text: str) -> int:
    """An argparse type: a TCP port, 0 (any free one) to 65535."""
    if not text.strip().isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 0 to 65535, got {text!r}")
    return int(text)


def job_count(text: str) -> int:
    """An argparse type: --max-jobs, 0 (no training from the page) to jobs.MAX_JOBS_LIMIT."""
    from ..serve.jobs import MAX_JOBS_LIMIT

    if not text.strip().isdigit() or int(text) > MAX_JOBS_LIMIT:
        raise argparse.ArgumentTypeError(
            f"must be a number from 0 to {MAX_JOBS_LIMIT}, got {text!r}"
        )
    return int(text)


def host_name(text: str) -> str:
    """An argparse type: a host name or IP address for --allow-host."""
    from ..serve.middleware import host_name as normal_name

    try:
        return normal_name(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_command(sub) -> None:
    """Add the serve subcommand to the subparsers ``sub`` of cli.make_parser."""
    p = sub.add_parser("serve", help="a web page that shows what every layer of a network sees")
    p.add_argument(
        "--model",
        nargs="+",
        action="extend",
        default=[],
        metavar="PATH",
        help="more models to offer: files of scratchdl train, or the book's .pkl files "
        "(the shipped SimpleConvNet is always there)",
    )
    p.add_argument("--runs", default="runs", metavar="DIR", help="training runs to show")
    p.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help="address to listen on (default 127.0.0.1: this machine)",
    )
    p.add_argument("--port", type=port_number, default=DEFAULT_PORT, help="0: any free port")
    p.add_argument(
        "--allow-host",
        action="append",
        default=[],
        type=host_name,
        metavar="NAME",
        help="a Host name the server also answers to (repeatable); by default only "
        "localhost, 127.0.0.1, [::1] and the --host address, against DNS rebinding",
    )
    p.add_argument(
        "--max-jobs",
        type=job_count,
        metavar="N",
        help="training jobs of the Train tab that run at once (default: the cores, at most 4; "
        "0: no training from the page)",
    )
    p.set_defaults(func=cmd_serve)


def host_warning(host: str) -> str | None:
    """The warning for a --host that other machines can reach, or None for loopback."""
    if host == "localhost":
        return None
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host).is_loopback:
            return None
    return (
        f"warning: --host {host} lets other machines reach this server, which has no login: "
        "anyone on the network can use it; use --host 127.0.0.1 to keep it to this machine "
        "(the names others reach it by must be given with --allow-host)"
    )


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port) and listening; OSError naming the address and the fix."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as e:
        raise OSError(e.errno, f"--host {host}: cannot listen there: {e.strerror or e}") from e
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart reuses the port
        sock.bind(address)
        sock.listen(128)
    except OSError as e:
        sock.close()
        raise OSError(
            e.errno,
            f"cannot listen on {host}:{port}: {e.strerror or e}; choose another --port "
            "(0 picks a free one)",
        ) from e
    return sock


def url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"  # what to type on this machine
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def server_config(
    app,
    *,
    max_connections: int = MAX_CONNECTIONS,
    head_seconds: float | None = None,
    max_waiting: int | None = None,
):
    """The uvicorn.Server of ``scratchdl serve`` for ``app``: h11 with a deadline for each
    request head and at most ``max_waiting`` (default half of ``max_connections``)
    connections waiting for one (serve.connections), keep-alive and head size bounded."""
    import uvicorn

    from ..serve.connections import HEAD_SECONDS, guarded_protocol

    protocol = guarded_protocol(
        head_seconds=HEAD_SECONDS if head_seconds is None else head_seconds,
        max_waiting=max_connections // 2 if max_waiting is None else max_waiting,
    )
    config = uvicorn.Config(
        app,
        http=protocol,
        # a second Ctrl-C while uvicorn shut down cancelled the lifespan task, which uvicorn
        # then logged as a traceback; the app needs no start-up, and cmd_serve closes the pool
        lifespan="off",
        log_level="warning",
        access_log=False,
        limit_concurrency=max_connections,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
    )
    return uvicorn.Server(config)


def cmd_serve(args) -> int:
    from threadpoolctl import threadpool_limits

    from ..serve.app import create_app
    from ..serve.inference import Models, Pool
    from ..serve.jobs import JobManager
    from ..serve.middleware import allowed_hosts
    from ..serve.runs import runs_root

    warning = host_warning(args.host)
    if warning:
        print(warning, file=sys.stderr)
    # a bad file stops here, before the port is taken; the runs' models are looked for again
    models = Models(args.model, runs=runs_root(args.runs))
    pool = Pool()  # closed here, not by the app's lifespan: see lifespan="off" in server_config
    hosts = allowed_hosts(args.host, args.allow_host)
    jobs = None if args.max_jobs == 0 else JobManager(runs_root(args.runs), max_jobs=args.max_jobs)
    app = create_app(models, runs_root(args.runs), pool=pool, hosts=hosts, jobs=jobs)
    sock = listen(args.host, args.port)
    server = server_config(app)
    if jobs is not None:  # the first Ctrl-C also ends the jobs' live streams, which uvicorn
        exit_server = server.handle_exit  # would otherwise wait for; the jobs stop below

        def handle_exit(sig, frame) -> None:
            jobs.begin_close()
            exit_server(sig, frame)

        server.handle_exit = handle_exit
    print(
        f"scratchdl serve: {url(sock)}  (models: {', '.join(models.entries)}; Ctrl-C to stop)",
        flush=True,
    )
    # each of the pool's workers runs its products on one BLAS thread: two workers on two
    # cores, not two workers each starting a BLAS thread per core
    with sock, threadpool_limits(limits=1, user_api="blas"):
        try:
            server.run(sockets=[sock])
        except KeyboardInterrupt:  # uvicorn shuts down, then raises the Ctrl-C it caught
            pass
        finally:
            pool.close()
            stopped = jobs.close() if jobs is not None else []
    if stopped:
        names = ", ".join(f"{jobs.runs_dir.name}/{job.id}" for job in stopped)
        print(
            f"scratchdl serve: training stopped with checkpoints in {names}; resume on the "
            "Train tab",
            flush=True,
        )
    print("scratchdl serve: stopped", flush=True)
    return 0

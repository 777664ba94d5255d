"""gunicorn settings for the web container, read from the environment.

    WEB_CONCURRENCY    worker processes (default: 2 x CPUs + 1, at most 8)
    GUNICORN_THREADS   threads per worker (default 1)
    GUNICORN_TIMEOUT   seconds before a silent worker is restarted (default 60:
                       a large PDF can take a while)
"""

from __future__ import annotations

import multiprocessing
import os


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise SystemExit(f"{name} must be an integer, got {value!r}") from None


wsgi_app = "portal.wsgi:application"
bind = "0.0.0.0:8000"
workers = _int("WEB_CONCURRENCY", min(2 * multiprocessing.cpu_count() + 1, 8))
threads = _int("GUNICORN_THREADS", 1)
timeout = _int("GUNICORN_TIMEOUT", 60)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = 5
# Recycle workers now and then so a slow leak never becomes an outage.
max_requests = _int("GUNICORN_MAX_REQUESTS", 1000)
max_requests_jitter = max_requests // 10
# The heartbeat files live in memory, not on the container's overlay disk.
worker_tmp_dir = "/dev/shm"  # noqa: S108 - gunicorn heartbeat files, private per worker
# Logs go to stdout/stderr, where `docker compose logs` collects them.
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
access_log_format = '%({x-forwarded-for}i)s %(h)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s"'

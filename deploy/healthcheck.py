"""Container healthchecks that need more than one shell command.

    python deploy/healthcheck.py web    GET /health/ answers 200 (database and Redis reachable)
    python deploy/healthcheck.py beat   beat wrote its schedule file recently (it is ticking)

The worker's check is `celery -A portal inspect ping` (see docker-compose.yml).
Exit status 0 means healthy; the reason for anything else is printed.
"""

from __future__ import annotations

import glob
import os
import sys
import time
import urllib.error
import urllib.request

BEAT_SCHEDULE = "/app/var/celerybeat-schedule"
# Beat saves its schedule at least every 3 minutes while it ticks.
BEAT_MAX_AGE_SECONDS = 10 * 60


def host_header() -> str:
    """A host name Django accepts: the first of ALLOWED_HOSTS."""
    hosts = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "").split(",") if h.strip()]
    if not hosts or hosts[0] == "*":
        return "localhost"
    return hosts[0].lstrip(".")


def check_web() -> str | None:
    request = urllib.request.Request(  # noqa: S310 - fixed loopback URL
        "http://127.0.0.1:8000/health/", headers={"Host": host_header()}
    )
    try:
        with urllib.request.urlopen(request, timeout=8) as response:  # noqa: S310
            if response.status == 200:
                return None
            return f"/health/ answered {response.status}"
    except urllib.error.HTTPError as exc:
        return f"/health/ answered {exc.code}: {exc.read(200).decode(errors='replace')}"
    except OSError as exc:
        return f"/health/ unreachable: {exc}"


def check_beat() -> str | None:
    # shelve may add a suffix (.db, .dat) depending on the dbm module.
    files = glob.glob(BEAT_SCHEDULE + "*")
    if not files:
        return f"no schedule file at {BEAT_SCHEDULE}"
    age = time.time() - max(os.path.getmtime(f) for f in files)
    if age > BEAT_MAX_AGE_SECONDS:
        return f"schedule file not written for {age:.0f} s"
    return None


def main(argv: list[str]) -> int:
    checks = {"web": check_web, "beat": check_beat}
    if len(argv) != 2 or argv[1] not in checks:
        print(f"usage: {argv[0]} {'|'.join(checks)}", file=sys.stderr)
        return 2
    problem = checks[argv[1]]()
    if problem:
        print(problem, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

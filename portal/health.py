"""The health endpoint that container healthchecks and load balancers poll."""

from __future__ import annotations

import logging

from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

logger = logging.getLogger(__name__)


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except Exception:
        logger.warning("health: the database does not answer", exc_info=True)
        return False


def _redis_ok() -> bool:
    # The cache and the Celery broker share REDIS_URL: a round trip through the
    # cache proves both are reachable.
    try:
        cache.set("health-check", "ok", timeout=10)
        return cache.get("health-check") == "ok"
    except Exception:
        logger.warning("health: Redis does not answer", exc_info=True)
        return False


@never_cache
@require_safe
def health(request: HttpRequest) -> HttpResponse:
    failing = [
        name for name, ok in (("database", _database_ok()), ("redis", _redis_ok())) if not ok
    ]
    if failing:
        # Names only: the details go to the log, not to whoever polls.
        return HttpResponse(
            "unavailable: " + ", ".join(failing), status=503, content_type="text/plain"
        )
    return HttpResponse("ok", content_type="text/plain")

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest

from portal.staff import is_courier, is_office_user


def portal(request: HttpRequest) -> dict[str, Any]:
    user = request.user
    return {
        "operator_name": settings.OPERATOR_NAME,
        "is_office_user": is_office_user(user),
        "is_courier": is_courier(user),
    }

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest

from portal import extensions
from portal.staff import is_courier, is_office_user


def portal(request: HttpRequest) -> dict[str, Any]:
    user = request.user
    office = is_office_user(user)
    return {
        "operator_name": settings.OPERATOR_NAME,
        "is_office_user": office,
        "is_courier": is_courier(user),
        "customer_nav": extensions.CUSTOMER_NAV,
        "office_nav": extensions.office_nav(user) if office else [],
    }

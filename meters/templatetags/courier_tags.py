"""Template helpers of the courier pages."""

from __future__ import annotations

from typing import Any

from django import template

from meters.courier import device_key

register = template.Library()


@register.simple_tag(takes_context=True)
def courier_device_key(context: dict[str, Any]) -> str:
    """The signed-in courier's key for what the phone keeps (see meters.courier.device_key)."""
    request = context.get("request")
    user = getattr(request, "user", None)
    return device_key(user) if user is not None and user.is_authenticated else ""

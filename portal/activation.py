"""Two-part activation. TODO(helper): implement."""

from django.http import HttpRequest, HttpResponse


def _todo(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
    return HttpResponse("todo")


activate = grant_access = letter_pdf = revoke = _todo

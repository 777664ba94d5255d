"""Office views (/office/). TODO(helper): implement."""

from django.http import HttpRequest, HttpResponse


def _todo(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
    return HttpResponse("todo")


home = team_tasks = task_detail = customers = customer_create = customer_detail = _todo
customer_edit = representative_create = change_request = change_request_decide = _todo
message_retry = _todo

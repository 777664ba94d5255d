from django.urls import path

from portal import activation, office

app_name = "office"

urlpatterns = [
    path("", office.home, name="home"),
    path("tasks/team/", office.team_tasks, name="team-tasks"),
    path("tasks/<uuid:public_id>/", office.task_detail, name="task"),
    path("customers/", office.customers, name="customers"),
    path("customers/new/", office.customer_create, name="customer-create"),
    path("customers/<uuid:public_id>/", office.customer_detail, name="customer"),
    path("customers/<uuid:public_id>/edit/", office.customer_edit, name="customer-edit"),
    path(
        "customers/<uuid:public_id>/representatives/new/",
        office.representative_create,
        name="representative-create",
    ),
    path("customers/<uuid:public_id>/access/", activation.grant_access, name="grant-access"),
    path(
        "activations/<uuid:public_id>/letter.pdf", activation.letter_pdf, name="activation-letter"
    ),
    path("activations/<uuid:public_id>/revoke/", activation.revoke, name="activation-revoke"),
    path("change-requests/<uuid:public_id>/", office.change_request, name="change-request"),
    path(
        "change-requests/<uuid:public_id>/decide/",
        office.change_request_decide,
        name="change-request-decide",
    ),
    path("messages/<uuid:public_id>/retry/", office.message_retry, name="message-retry"),
]

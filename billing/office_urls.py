from django.urls import path

from billing import office

app_name = "billing-office"

urlpatterns = [
    # Billing runs (/office/billing/…).
    path("", office.run_list, name="run-list"),
    path("new/", office.run_create, name="run-create"),
    path("<uuid:public_id>/", office.run_detail, name="run-detail"),
    path("<uuid:public_id>/progress/", office.run_progress, name="run-progress"),
    path("<uuid:public_id>/issue/", office.run_issue, name="run-issue"),
    path("<uuid:public_id>/resume/", office.run_resume, name="run-resume"),
    path("<uuid:public_id>/cancel/", office.run_cancel, name="run-cancel"),
    path("<uuid:public_id>/points/<uuid:point_id>/exclude/", office.point_exclude,
         name="point-exclude"),
    path("<uuid:public_id>/points/<uuid:point_id>/reprice/", office.point_reprice,
         name="point-reprice"),
    path("print-batches/<uuid:public_id>/letters.pdf", office.batch_pdf, name="batch-pdf"),
    path("print-batches/<uuid:public_id>/list.csv", office.batch_list, name="batch-list"),
]

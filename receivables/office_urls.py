"""Office URLs of receivables, mounted at /office/receivables/ (app "receivables-office")."""

from django.urls import path

from receivables import office, office_files

app_name = "receivables-office"

urlpatterns = [
    path("files/", office_files.file_list, name="files"),
    path("files/upload/", office_files.file_upload, name="file-upload"),
    path("files/<uuid:public_id>/", office_files.file_detail, name="file"),
    path("files/<uuid:public_id>/post/", office_files.file_post, name="file-post"),
    path("files/<uuid:public_id>/discard/", office_files.file_discard, name="file-discard"),
    path("payments/new/", office.payment_create, name="payment-create"),
    path("payments/unmatched/", office.suspense, name="suspense"),
    path("payments/unmatched/suggest/", office.suspense_suggest, name="suspense-suggest"),
    path("payments/<uuid:public_id>/", office.payment_detail, name="payment"),
    path("payments/<uuid:public_id>/reverse/", office.payment_reverse, name="payment-reverse"),
    path("payments/<uuid:public_id>/refund/", office.payment_refund, name="payment-refund"),
    path("payments/<uuid:public_id>/match/", office.payment_match, name="payment-match"),
    path("customers/<uuid:public_id>/ledger/", office.customer_ledger, name="ledger"),
    path(
        "customers/<uuid:public_id>/statement.pdf",
        office.customer_statement_pdf,
        name="statement-pdf",
    ),
]

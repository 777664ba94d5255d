"""Office URLs of dunning, mounted at /office/dunning/ (app "dunning-office")."""

from django.urls import path

from receivables import dunning_office

app_name = "dunning-office"

urlpatterns = [
    path("", dunning_office.overview, name="overview"),
    path("approvals/", dunning_office.approvals, name="approvals"),
    path("approvals/decide/", dunning_office.approvals_decide, name="approvals-decide"),
    path("reconciliation/", dunning_office.reconciliation, name="reconciliation"),
    path("reconciliation/decide/", dunning_office.reconciliation_decide,
         name="reconciliation-decide"),
    path("letters/", dunning_office.letter_batches, name="letter-batches"),
    path("letters/new/", dunning_office.letter_batch_make, name="letter-batch-make"),
    path("letters/<uuid:public_id>/letters.pdf", dunning_office.letter_batch_pdf,
         name="letter-batch-pdf"),
    path("letters/<uuid:public_id>/list.csv", dunning_office.letter_batch_list,
         name="letter-batch-list"),
    path("notices/<uuid:public_id>/letter.pdf", dunning_office.notice_letter,
         name="notice-letter"),
]

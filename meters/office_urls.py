from django.urls import path

from meters import office, office_imports, office_rounds

app_name = "meters-office"

urlpatterns: list = [
    # Office pages (/office/meters/…).
    path("readings/<uuid:public_id>/", office.reading_review, name="reading-review"),
    path("rounds/", office_rounds.round_list, name="round-list"),
    path("rounds/new/", office_rounds.round_create, name="round-create"),
    path("rounds/<uuid:public_id>/", office_rounds.round_detail, name="round-detail"),
    path("rounds/<uuid:public_id>/progress/", office_rounds.round_progress, name="round-progress"),
    path("rounds/<uuid:public_id>/close/", office_rounds.round_close, name="round-close"),
    path("rounds/<uuid:public_id>/reopen/", office_rounds.round_reopen, name="round-reopen"),
    path("rounds/<uuid:public_id>/sheet.pdf", office_rounds.round_sheet, name="round-sheet"),
    # Reading imports and the reading export (imports helper).
    path("imports/", office_imports.import_list, name="import-list"),
    path("imports/upload/", office_imports.import_upload, name="import-upload"),
    path("imports/<uuid:public_id>/", office_imports.import_detail, name="import-detail"),
    path("imports/<uuid:public_id>/commit/", office_imports.import_commit, name="import-commit"),
    path("imports/<uuid:public_id>/discard/", office_imports.import_discard,
         name="import-discard"),
    path("customers/<uuid:public_id>/readings-export/", office_imports.readings_export,
         name="readings-export"),
]

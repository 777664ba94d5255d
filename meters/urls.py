from django.urls import path

from meters import exports, views

app_name = "meters"

urlpatterns: list = [
    # Customer portal pages (/supply-points/…), written by the portal helper.
    path("", views.supply_point_list, name="supply-points"),
    path("<uuid:public_id>/", views.supply_point_detail, name="supply-point"),
    path(
        "<uuid:public_id>/registers/<uuid:register_id>/reading/",
        views.reading_create,
        name="reading-create",
    ),
    path("contracts/<uuid:public_id>/pdf/", views.contract_pdf, name="contract-pdf"),
    # Reading export (imports helper).
    path("readings/export/", exports.readings_export, name="readings-export"),
]

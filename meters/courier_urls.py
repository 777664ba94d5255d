from django.urls import path

from meters import courier
from portal.courier import login

app_name = "courier"

urlpatterns = [
    path("", courier.home, name="home"),
    path("login/", login, name="login"),
    path("sw.js", courier.service_worker, name="service-worker"),
    path("rounds/<uuid:public_id>/", courier.round_detail, name="round"),
    path(
        "rounds/<uuid:public_id>/registers/<uuid:register_id>/",
        courier.reading_form,
        name="reading-form",
    ),
    path(
        "rounds/<uuid:public_id>/stops/<int:position>/skip/",
        courier.stop_skip,
        name="stop-skip",
    ),
    path("readings/", courier.reading_sync, name="reading-sync"),
]

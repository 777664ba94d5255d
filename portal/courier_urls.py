from django.urls import path

from portal import courier

app_name = "courier"

urlpatterns = [
    path("", courier.home, name="home"),
    path("login/", courier.login, name="login"),
]

"""Customer portal URLs of receivables, mounted at /balance/ (app "receivables")."""

from django.urls import path

from receivables import views

app_name = "receivables"

urlpatterns = [
    path("", views.balance, name="balance"),
    path("statement/", views.statement, name="statement"),
    path("statement/pdf/", views.statement_pdf, name="statement-pdf"),
]

from django.urls import path

from portal import views

app_name = "portal"

urlpatterns = [
    path("", views.home, name="home"),
    path("no-customer/", views.no_customer, name="no-customer"),
    path("switch/", views.switch, name="switch"),
    path("account/", views.account, name="account"),
    path("account/contact/", views.contact_update, name="contact-update"),
    path("account/email/<str:token>/", views.contact_email_confirm, name="contact-email-confirm"),
    path("account/billing/", views.billing_change, name="billing-change"),
    path("representatives/", views.representatives, name="representatives"),
    path("representatives/new/", views.representative_create, name="representative-create"),
    path(
        "representatives/<uuid:public_id>/", views.representative_edit, name="representative-edit"
    ),
    path("profile/", views.profile, name="profile"),
]

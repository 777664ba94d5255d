from django.apps import AppConfig
from django.db.models.signals import post_migrate


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Guichet"

    def ready(self) -> None:
        from portal import checks, roles  # noqa: F401 - registers system checks

        post_migrate.connect(roles.sync_role_groups, sender=self)

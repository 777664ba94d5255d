"""python manage.py demo_totp <email>: the current TOTP code of a demo login.

Works only for users whose authenticator holds the published demo secret of
seed_demo, and never in production.
"""

from __future__ import annotations

import time
from typing import Any

from allauth.mfa import app_settings
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value
from allauth.mfa.utils import decrypt
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from portal.management.commands.seed_demo import DEMO_TOTP_SECRET
from portal.models import User


class Command(BaseCommand):
    help = "Print the current 6-digit TOTP code of a demo staff login (not in production)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("email", help="E-mail address of a demo login made by seed_demo.")

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.PRODUCTION:
            raise CommandError("demo_totp is for demo data and does not run in production.")
        email: str = options["email"]
        user = User.objects.filter(email__iexact=email.strip()).first()
        if user is None:
            raise CommandError(f"No user with the e-mail address {email}.")
        authenticator = Authenticator.objects.filter(
            user=user, type=Authenticator.Type.TOTP
        ).first()
        if authenticator is None:
            raise CommandError(f"{user.email} has no authenticator app set up.")
        secret = decrypt(authenticator.data["secret"])
        if secret != DEMO_TOTP_SECRET:
            raise CommandError(
                f"{user.email} uses their own authenticator, not the demo secret; "
                "read the code from their app."
            )
        now = int(time.time())
        period = app_settings.TOTP_PERIOD
        self.stdout.write(format_hotp_value(hotp_value(secret, now // period)))
        self.stderr.write(f"(valid for another {period - now % period} s)")

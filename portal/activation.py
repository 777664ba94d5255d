"""Two-part activation (seed S4): portal credentials sent in two parts.

The office grants a representative access. Part 1 (a lookup key and a
secret) is printed in a letter posted to the customer's billing address;
part 2 is e-mailed to the representative. Whoever holds both sets a
password at /accounts/activate/ and becomes a member of the customer with
the role the office chose. Only keyed hashes of the secrets are stored; the
codes are single use, expire, and lock after a few wrong tries.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import date, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from allauth.account.models import EmailAddress
from allauth.account.utils import perform_login
from allauth.core import ratelimit
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import Case, CharField, QuerySet, Value, When
from django.db.models.functions import Now
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import formats, timezone, translation
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from notifications.services import queue_email
from portal.documents import render_pdf
from portal.models import (
    ActivationCode,
    Customer,
    Membership,
    MembershipRole,
    Representative,
    User,
)
from portal.services import ServiceError, absolute_url, record
from portal.staff import StaffRequest, office_view

GRANT_PERMISSION = "portal.grant_portal_access"

# No 0/O, 1/I/L: the letter code is read off paper and typed by hand.
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
LOOKUP_LENGTH = 4
LETTER_SECRET_LENGTH = 8
EMAIL_CODE_LENGTH = 8
LETTER_CODE_LENGTH = LOOKUP_LENGTH + LETTER_SECRET_LENGTH

_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015_.·/]+")


# --- Codes ----------------------------------------------------------------------


def _random_code(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def format_code(code: str) -> str:
    """ABCDEFGHJKMN → ABCD-EFGH-JKMN (groups of four, as printed)."""
    return "-".join(code[i:i + 4] for i in range(0, len(code), 4))


def normalise_code(text: str) -> str:
    """What a person typed, without case, spaces and dashes."""
    return _SEPARATORS.sub("", text).upper()


def _digest(part: str, lookup: str, value: str, key: str) -> str:
    message = f"guichet.activation.{part}:{lookup}:{value}".encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def _hash(part: str, lookup: str, value: str) -> str:
    return _digest(part, lookup, value, settings.SECRET_KEY)


def _matches(stored: str, part: str, lookup: str, value: str) -> bool:
    # Codes issued before a key rotation stay valid through SECRET_KEY_FALLBACKS.
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    found = False
    for key in keys:
        found |= hmac.compare_digest(stored, _digest(part, lookup, value, key))
    return found


def codes_for(customer: Customer) -> QuerySet[ActivationCode]:
    """The customer's activation codes, newest first, with ``state_key`` for badges."""
    return (
        ActivationCode.objects.filter(customer=customer)
        .select_related("representative", "created_by")
        .annotate(
            state_key=Case(
                When(used_at__isnull=False, then=Value("used")),
                When(revoked_at__isnull=False, then=Value("revoked")),
                When(locked_at__isnull=False, then=Value("locked")),
                When(expires_at__lte=Now(), then=Value("expired")),
                default=Value("waiting"),
                output_field=CharField(),
            )
        )
        .order_by("-created_at", "-id")
    )


def _local_date(moment: Any) -> date:
    return timezone.localtime(moment, ZoneInfo(settings.OPERATOR_TIME_ZONE)).date()


def _actor(request: HttpRequest | None) -> User | None:
    user = getattr(request, "user", None)
    return user if user is not None and user.is_authenticated else None


# --- Granting -------------------------------------------------------------------


def _create_code(*, fields: dict[str, Any], secret: str, email_code: str) -> ActivationCode:
    """Save a code under a fresh lookup key; retried if another grant took the key."""
    for _attempt in range(20):
        lookup = _random_code(LOOKUP_LENGTH)
        if ActivationCode.objects.filter(lookup=lookup).exists():
            continue
        try:
            with transaction.atomic():
                return ActivationCode.objects.create(
                    lookup=lookup,
                    part1_hash=_hash("part1", lookup, secret),
                    part2_hash=_hash("part2", lookup, email_code),
                    **fields,
                )
        except IntegrityError:
            continue
    raise ServiceError(_("Could not create a unique code; please try again."))


def _revoke(code: ActivationCode, *, actor: User | None, request: HttpRequest | None,
            note: str = "") -> None:
    code.revoked_at = timezone.now()
    code.save(update_fields=["revoked_at"])
    record(action="activation.revoked", actor=actor, customer=code.customer, obj=code,
           after={"revoked_at": code.revoked_at}, note=note, request=request)


@sensitive_variables("secret", "email_code", "letter_code")
@transaction.atomic
def grant_portal_access(
    *,
    representative: Representative,
    role: str,
    granted_by: User,
    request: HttpRequest | None = None,
) -> tuple[ActivationCode, str, str]:
    """Give a representative portal access: letter (part 1) + e-mail (part 2).

    Returns the code and both parts as printed and e-mailed, so a caller can
    show or test them; they are not stored anywhere in clear except in the
    letter and the queued e-mail.
    """
    # Serialises grants for one representative: a double click must not leave two live codes.
    representative = Representative.objects.select_for_update().select_related("customer").get(
        pk=representative.pk
    )
    customer = representative.customer
    email = representative.email.strip().lower()
    if not email:
        raise ServiceError(_("%(name)s has no e-mail address; part 2 of the codes is sent by "
                             "e-mail.") % {"name": representative.full_name})
    if role not in MembershipRole.values:
        raise ServiceError(_("Choose a role."))

    user = User.objects.filter(email__iexact=email).first()
    new_user = user is None
    if user is None:
        user = User(email=email, first_name=representative.first_name,
                    last_name=representative.last_name, language=customer.language,
                    is_active=False)
        user.set_unusable_password()
        user.save()
    elif Membership.objects.filter(user=user, customer=customer).exists():
        raise ServiceError(_("%(email)s already has access to this customer in the portal.")
                           % {"email": email})
    if EmailAddress.objects.filter(email__iexact=email, verified=True).exclude(user=user).exists():
        raise ServiceError(_("%(email)s is a confirmed address of another account; "
                             "use another address.") % {"email": email})
    if representative.user_id != user.pk:
        representative.user = user
        representative.save(update_fields=["user"])

    for old in ActivationCode.objects.select_for_update().filter(
        representative=representative, used_at=None, revoked_at=None
    ):
        _revoke(old, actor=granted_by, request=request, note="replaced by a new letter")

    secret = _random_code(LETTER_SECRET_LENGTH)
    email_code = _random_code(EMAIL_CODE_LENGTH)
    code = _create_code(
        fields={
            "user": user, "customer": customer, "representative": representative,
            "role": role, "created_by": granted_by,
            "expires_at": timezone.now() + timedelta(days=settings.ACTIVATION_VALID_DAYS),
        },
        secret=secret, email_code=email_code,
    )
    letter_code = format_code(code.lookup + secret)
    record(action="activation.granted", actor=granted_by, customer=customer, obj=code,
           after={"representative": representative.pk, "user": user.pk, "new_user": new_user,
                  "role": role, "expires_at": code.expires_at},
           request=request)

    context = {
        "customer": customer,
        "representative": representative,
        "email": email,
        "role": MembershipRole(role).label,
        "expires_on": _local_date(code.expires_at),
        "max_attempts": settings.ACTIVATION_MAX_ATTEMPTS,
        "url": absolute_url(reverse("activate")),
        "operator_name": settings.OPERATOR_NAME,
        "operator_address_lines": [
            line.strip() for line in settings.OPERATOR_ADDRESS.split(",") if line.strip()
        ],
    }
    with translation.override(customer.language):
        pdf = render_pdf("portal/letters/activation_letter.html", {
            **context, "letter_code": letter_code, "today": _local_date(timezone.now()),
        })
    code.letter.save(f"activation-{customer.number}-{code.public_id}.pdf", ContentFile(pdf),
                     save=False)
    code.save(update_fields=["letter"])
    record(action="activation.letter_rendered", actor=granted_by, customer=customer, obj=code,
           after={"letter": code.letter.name}, request=request)

    message = queue_email(
        to=email, kind="activation", template="portal/email/activation",
        context={**context, "email_code": format_code(email_code)},
        language=customer.language, about=customer,
    )
    record(action="activation.email_queued", actor=granted_by, customer=customer, obj=code,
           after={"to": email, "message": str(message.public_id)}, request=request)
    return code, letter_code, format_code(email_code)


@transaction.atomic
def revoke_activation(
    *, code: ActivationCode, revoked_by: User, request: HttpRequest | None = None
) -> ActivationCode:
    """Withdraw codes that were not used yet (a lost letter, a wrong person)."""
    code = ActivationCode.objects.select_for_update().select_related("customer").get(pk=code.pk)
    if code.used_at:
        raise ServiceError(_("These codes were already used; they cannot be revoked."))
    if code.revoked_at:
        raise ServiceError(_("These codes were already revoked."))
    _revoke(code, actor=revoked_by, request=request)
    return code


# --- Activating -----------------------------------------------------------------


class ActivationError(Exception):
    """The codes were refused; ``message`` tells the person why."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def _invalid() -> str:
    return _("These codes are not valid. Check the code in the letter and the code in the "
             "e-mail, and try again.")


def _locked() -> str:
    return _("These codes are locked after too many wrong tries. Please contact customer "
             "service for a new letter.")


def _refusal(code: ActivationCode) -> str | None:
    """Why a known code cannot be used any more, or None if it can."""
    if code.used_at:
        return _("These codes were already used. Log in with your e-mail address and "
                 "password; if you forgot the password, reset it.")
    if code.revoked_at:
        return _("These codes were withdrawn, for example because a newer letter was sent. "
                 "Use the newest letter or contact customer service.")
    if code.locked_at:
        return _locked()
    if code.expires_at <= timezone.now():
        return _("These codes expired on %(date)s. Please contact customer service for a new "
                 "letter.") % {"date": formats.date_format(_local_date(code.expires_at))}
    return None


def _count_wrong_try(code: ActivationCode, request: HttpRequest | None) -> ActivationError:
    code.failed_attempts += 1
    fields = ["failed_attempts"]
    record(action="activation.wrong_try", actor=_actor(request), customer=code.customer,
           obj=code, after={"failed_attempts": code.failed_attempts}, request=request)
    left = settings.ACTIVATION_MAX_ATTEMPTS - code.failed_attempts
    if left <= 0:
        code.locked_at = timezone.now()
        fields.append("locked_at")
        record(action="activation.locked", actor=_actor(request), customer=code.customer,
               obj=code, after={"locked_at": code.locked_at}, request=request)
    code.save(update_fields=fields)
    if left <= 0:
        return ActivationError(_locked())
    return ActivationError(
        _invalid() + " " + translation.ngettext(
            "%(left)d try is left before the codes are locked.",
            "%(left)d tries are left before the codes are locked.", left,
        ) % {"left": left}
    )


def _verify_email_address(user: User) -> None:
    """Part 2 reached this address: allauth may treat it as verified and primary."""
    address = EmailAddress.objects.filter(user=user, email__iexact=user.email).first()
    EmailAddress.objects.filter(user=user, primary=True).exclude(
        pk=address.pk if address else None
    ).update(primary=False)
    if address is None:
        EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    elif not (address.verified and address.primary):
        address.verified = address.primary = True
        address.save(update_fields=["verified", "primary"])


@sensitive_variables("letter_code", "email_code", "password")
def activate_account(
    *, letter_code: str, email_code: str, password: str, request: HttpRequest | None = None
) -> User:
    """Check both parts, set the password and make the user a member.

    A wrong try is counted and committed even though the activation fails,
    so the counter cannot be reset by failing.
    """
    letter_code, email_code = normalise_code(letter_code), normalise_code(email_code)
    lookup, secret = letter_code[:LOOKUP_LENGTH], letter_code[LOOKUP_LENGTH:]
    failure: ActivationError | None = None
    with transaction.atomic():
        code = (
            ActivationCode.objects.select_for_update(of=("self",))
            .select_related("user", "customer", "representative")
            .filter(lookup=lookup)
            .first()
        )
        if code is None:
            raise ActivationError(_invalid())
        refusal = _refusal(code)
        if refusal:
            raise ActivationError(refusal)
        # Both checks always run: the time taken says nothing about which part was wrong.
        letter_ok = _matches(code.part1_hash, "part1", lookup, secret)
        email_ok = _matches(code.part2_hash, "part2", lookup, email_code)
        if not (letter_ok and email_ok):
            failure = _count_wrong_try(code, request)
        else:
            user = code.user
            try:
                password_validation.validate_password(password, user)
            except ValidationError as exc:
                raise ActivationError(" ".join(exc.messages), field="password1") from None
            user.set_password(password)
            user.is_active = True
            user.save(update_fields=["password", "is_active"])
            _verify_email_address(user)
            membership, created = Membership.objects.get_or_create(
                user=user, customer=code.customer,
                defaults={"role": code.role, "representative": code.representative},
            )
            if code.representative.user_id != user.pk:
                code.representative.user = user
                code.representative.save(update_fields=["user"])
            code.used_at = timezone.now()
            code.save(update_fields=["used_at"])
            record(action="activation.activated", actor=user, customer=code.customer, obj=code,
                   after={"membership": membership.pk, "role": membership.role,
                          "membership_created": created},
                   request=request)
    if failure is not None:
        raise failure
    return user


# --- Forms ----------------------------------------------------------------------


def _code_field_error(value: str, length: int, example: str) -> str | None:
    if len(value) != length:
        return _("This code has %(length)d characters, like %(example)s.") % {
            "length": length, "example": example}
    if any(char not in ALPHABET for char in value):
        return _("Codes use only letters and the digits 2 to 9 (never 0, 1, I, L or O).")
    return None


class ActivationForm(forms.Form):
    letter_code = forms.CharField(
        label=gettext_lazy("Code from the letter (part 1)"), max_length=40,
        help_text=gettext_lazy("As printed in the letter we posted: XXXX-XXXX-XXXX."),
        widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "characters",
                                      "spellcheck": "false", "class": "code"}),
    )
    email_code = forms.CharField(
        label=gettext_lazy("Code from the e-mail (part 2)"), max_length=30,
        help_text=gettext_lazy("As written in the e-mail we sent: XXXX-XXXX."),
        widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "characters",
                                      "spellcheck": "false", "class": "code"}),
    )
    password1 = forms.CharField(
        label=gettext_lazy("New password"), strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    password2 = forms.CharField(
        label=gettext_lazy("New password again"), strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        rules = password_validation.password_validators_help_text_html()
        self.fields["password1"].help_text = rules

    def clean_letter_code(self) -> str:
        value = normalise_code(self.cleaned_data["letter_code"])
        error = _code_field_error(value, LETTER_CODE_LENGTH, "ABCD-EFGH-JKMN")
        if error:
            raise ValidationError(error)
        return value

    def clean_email_code(self) -> str:
        value = normalise_code(self.cleaned_data["email_code"])
        error = _code_field_error(value, EMAIL_CODE_LENGTH, "ABCD-EFGH")
        if error:
            raise ValidationError(error)
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        password1, password2 = data.get("password1"), data.get("password2")
        if password1 and password2 and password1 != password2:
            self.add_error("password2", _("The two passwords differ."))
        elif password1:
            try:
                password_validation.validate_password(password1)
            except ValidationError as exc:
                self.add_error("password1", exc)
        return data


class RepresentativeField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        if obj.email:
            return f"{obj.full_name} <{obj.email}>"
        return _("%(name)s (no e-mail address)") % {"name": obj.full_name}


class GrantForm(forms.Form):
    representative = RepresentativeField(
        queryset=Representative.objects.none(), to_field_name="public_id",
        label=gettext_lazy("Representative"),
        empty_label=gettext_lazy("Choose a representative"),
    )
    role = forms.ChoiceField(
        label=gettext_lazy("Role in the portal"),
        choices=[("", gettext_lazy("Choose a role")), *MembershipRole.choices],
        help_text=gettext_lazy("Owners and managers may request changes; viewers only look."),
    )

    def __init__(self, *args: Any, customer: Customer, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["representative"]
        assert isinstance(field, RepresentativeField)
        field.queryset = customer.representatives.order_by("last_name", "first_name")

    def clean_representative(self) -> Representative:
        representative: Representative = self.cleaned_data["representative"]
        if not representative.email:
            raise ValidationError(
                _("%(name)s has no e-mail address. Add one first: part 2 of the codes is sent "
                  "by e-mail.") % {"name": representative.full_name}
            )
        return representative


# --- Views ----------------------------------------------------------------------


@sensitive_post_parameters("letter_code", "email_code", "password1", "password2")
@never_cache
@require_http_methods(["GET", "POST"])
def activate(request: HttpRequest) -> HttpResponse:
    """Anyone holding both parts sets a password here and is logged in."""
    form = ActivationForm(request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST":
        if not ratelimit.consume(request, action="activate"):
            form.add_error(None, _("Too many attempts from your network. Please wait a few "
                                   "minutes and try again."))
            status = 429
        elif form.is_valid():
            try:
                user = activate_account(
                    letter_code=form.cleaned_data["letter_code"],
                    email_code=form.cleaned_data["email_code"],
                    password=form.cleaned_data["password1"],
                    request=request,
                )
            except ActivationError as exc:
                form.add_error(exc.field, exc.message)
            else:
                messages.success(request, _(
                    "Your portal account is active. For extra safety, turn on two-factor "
                    "authentication under Security."
                ))
                return perform_login(request, user, redirect_url=reverse("portal:home"))
    return render(request, "portal/activation/activate.html", {"form": form}, status=status)


def _grant_context(customer: Customer, form: GrantForm) -> dict[str, Any]:
    return {"customer": customer, "form": form, "activation_codes": codes_for(customer)}


@office_view(GRANT_PERMISSION)
@require_http_methods(["GET", "POST"])
def grant_access(request: StaffRequest, public_id: UUID) -> HttpResponse:
    customer = get_object_or_404(Customer, public_id=public_id)
    form = GrantForm(request.POST if request.method == "POST" else None, customer=customer)
    if request.method == "POST" and form.is_valid():
        representative = form.cleaned_data["representative"]
        try:
            grant_portal_access(representative=representative, role=form.cleaned_data["role"],
                                granted_by=request.user, request=request)
        except ServiceError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, _(
                "Access granted to %(name)s. Print the letter and post it; the e-mail with "
                "part 2 is on its way."
            ) % {"name": representative.full_name})
            if not request.htmx:  # type: ignore[attr-defined]
                return redirect("office:grant-access", public_id=customer.public_id)
            form = GrantForm(customer=customer)
    template = "office/grant_access.html"
    if request.htmx:  # type: ignore[attr-defined]
        template += "#panel"
    return render(request, template, _grant_context(customer, form))


# office_view is typed for HttpResponse; a FileResponse streams.
@office_view(GRANT_PERMISSION)
@require_GET
@never_cache
def letter_pdf(request: StaffRequest, public_id: UUID) -> HttpResponseBase:
    code = get_object_or_404(ActivationCode.objects.select_related("customer"),
                             public_id=public_id)
    if not code.letter:
        raise Http404
    try:
        handle = code.letter.open("rb")
    except FileNotFoundError:
        raise Http404 from None
    return FileResponse(handle, content_type="application/pdf", as_attachment=True,
                        filename=f"activation-letter-{code.customer.number}.pdf")


@office_view(GRANT_PERMISSION)
@require_POST
def revoke(request: StaffRequest, public_id: UUID) -> HttpResponse:
    code = get_object_or_404(ActivationCode.objects.select_related("customer", "representative"),
                             public_id=public_id)
    try:
        revoke_activation(code=code, revoked_by=request.user, request=request)
    except ServiceError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _("The codes of %(name)s were revoked.")
                         % {"name": code.representative.full_name})
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "office/_activation_codes.html",
                      {"customer": code.customer, "activation_codes": codes_for(code.customer)})
    next_url = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()},
                                       require_https=request.is_secure()):
        return redirect(next_url)
    return redirect("office:grant-access", public_id=code.customer.public_id)

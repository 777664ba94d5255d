"""Guichet settings: one file, every deploy-time knob an environment variable.

Read through the small typed helpers below; a bad value stops start-up with a
message naming the variable.
"""

from __future__ import annotations

import os
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent

DEFAULT_SECRET_KEY = "dev-only-insecure-secret-key-change-me"  # noqa: S105


def envstr(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def envbool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {value!r}")


def envint(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from None


def envdecimal(name: str, default: str) -> Decimal:
    value = os.environ.get(name) or default
    try:
        return Decimal(value)
    except InvalidOperation:
        raise ImproperlyConfigured(f"{name} must be a decimal number, got {value!r}") from None


def envlist(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


# --- Core -------------------------------------------------------------------

DEBUG = envbool("DEBUG", False)
# "production" turns on every safety check below; "development" and "test"
# allow the defaults a laptop needs.
ENVIRONMENT = envstr("GUICHET_ENV", "test" if "pytest" in sys.modules else "development")
if ENVIRONMENT not in ("production", "development", "test"):
    raise ImproperlyConfigured("GUICHET_ENV must be production, development or test")
PRODUCTION = ENVIRONMENT == "production"

SECRET_KEY = envstr("SECRET_KEY", DEFAULT_SECRET_KEY)
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "" if PRODUCTION else "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS")
SITE_URL = envstr("SITE_URL", "http://localhost:8000").rstrip("/")

if PRODUCTION:
    problems = []
    if DEBUG:
        problems.append("DEBUG must be off")
    if SECRET_KEY == DEFAULT_SECRET_KEY or len(SECRET_KEY) < 50:
        problems.append("SECRET_KEY must be set to a random value of 50+ characters")
    if not ALLOWED_HOSTS:
        problems.append("ALLOWED_HOSTS must list the host names served")
    # The embedded servers keep their data inside the container: never in production.
    if not envstr("DATABASE_URL"):
        problems.append("DATABASE_URL must point at the PostgreSQL server")
    if not envstr("REDIS_URL"):
        problems.append("REDIS_URL must point at the Redis server")
    if problems:
        raise ImproperlyConfigured("Refusing to start in production: " + "; ".join(problems))

INSTALLED_APPS = [
    "portal",
    "meters",
    "billing",
    "receivables",
    "notifications",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.contrib.postgres",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "django_htmx",
    "template_partials",
    "csp",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "portal.middleware.UserLanguageMiddleware",
    "portal.middleware.StaffMFAMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "csp.middleware.CSPMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"
AUTH_USER_MODEL = "portal.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
                "portal.context_processors.portal",
            ],
        },
    },
]

# --- Database and Redis -----------------------------------------------------

DATABASE_URL = envstr("DATABASE_URL")
if not DATABASE_URL:
    from portal import embedded

    DATABASE_URL = embedded.postgres_uri()

import dj_database_url  # noqa: E402 - after the embedded server is known

DATABASES = {
    "default": dj_database_url.parse(DATABASE_URL, conn_max_age=envint("DB_CONN_MAX_AGE", 60))
}
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured("Guichet runs on PostgreSQL only; DATABASE_URL must be postgres://")

REDIS_URL = envstr("REDIS_URL")
if not REDIS_URL:
    from portal import embedded

    REDIS_URL = "unix://" + quote(str(embedded.redis_socket()))



def redis_database(url: str, db: int) -> str:
    """The same Redis server, another numbered database."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        query = "&".join(p for p in parts.query.split("&") if p and not p.startswith("db="))
        return f"unix://{parts.path}?" + (f"{query}&db={db}" if query else f"db={db}")
    return urlunsplit(parts._replace(path=f"/{db}"))


CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": envstr("CACHE_PREFIX", "guichet"),
    }
}

# --- Celery -----------------------------------------------------------------

# kombu spells a unix socket "redis+socket://"; redis-py spells it "unix://".
CELERY_BROKER_URL = (
    "redis+socket://" + REDIS_URL.removeprefix("unix://")
    if REDIS_URL.startswith("unix://")
    else REDIS_URL
)
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = envbool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"

# --- Auth, allauth, MFA -----------------------------------------------------

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 10},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "portal:home"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_UNIQUE_EMAIL = True
# Customers get access from the office (two-part activation), never by signing up.
ACCOUNT_ADAPTER = "portal.adapters.AccountAdapter"
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_LOGIN_ON_PASSWORD_RESET = False
ACCOUNT_PASSWORD_RESET_BY_CODE_ENABLED = False
ACCOUNT_RATE_LIMITS = {
    "login": "30/m/ip",
    "login_failed": "10/m/ip,5/5m/key",
    "reset_password": "20/m/ip,5/m/key",
    "reset_password_from_key": "20/m/ip",
    "confirm_email": "1/3m/key",
    "change_password": "5/m/user",
    # Our own two-part activation form (portal.activation).
    "activate": "10/m/ip,30/h/ip",
}
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = envstr("MFA_TOTP_ISSUER", "Guichet")
MFA_ADAPTER = "allauth.mfa.adapter.DefaultMFAAdapter"

# Sessions end after SESSION_IDLE_MINUTES without a request.
SESSION_COOKIE_AGE = envint("SESSION_IDLE_MINUTES", 30) * 60
SESSION_SAVE_EVERY_REQUEST = True
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_ENGINE = "django.contrib.sessions.backends.db"

ACTIVATION_VALID_DAYS = envint("ACTIVATION_VALID_DAYS", 30)
ACTIVATION_MAX_ATTEMPTS = envint("ACTIVATION_MAX_ATTEMPTS", 5)

# --- Security headers -------------------------------------------------------

SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the page, not the cookie
SESSION_COOKIE_SAMESITE = "Lax"
if PRODUCTION:
    SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", True)
    # Container healthchecks and load balancers poll over plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^health/$"]
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SESSION_COOKIE_NAME = "__Host-sessionid"
    CSRF_COOKIE_NAME = "__Host-csrftoken"

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
        "base-uri": ["'self'"],
        "object-src": ["'none'"],
    },
}

# --- Internationalisation ---------------------------------------------------

LANGUAGE_CODE = "en"
LANGUAGES = [
    ("en", _("English")),
    ("ro", _("Romanian")),
    ("pl", _("Polish")),
    ("it", _("Italian")),
    ("sk", _("Slovak")),
]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
USE_TZ = True
# Stored in UTC; shown, and business dates (due dates, deadlines) counted, in
# the operator's zone.
OPERATOR_TIME_ZONE = envstr("OPERATOR_TIME_ZONE", "Europe/Bucharest")
TIME_ZONE = OPERATOR_TIME_ZONE
OPERATOR_NAME = envstr("OPERATOR_NAME", "Guichet Utilities")
OPERATOR_ADDRESS = envstr("OPERATOR_ADDRESS", "1 Main Street, 010101 Bucharest, Romania")
# The operator's identity on invoices, in payment codes and in the Factur-X XML
# (billing.operator). Demo values outside production; production must set them.
_DEMO = not PRODUCTION
OPERATOR_STREET = envstr("OPERATOR_STREET", "1 Main Street" if _DEMO else "")
OPERATOR_POSTAL_CODE = envstr("OPERATOR_POSTAL_CODE", "010101" if _DEMO else "")
OPERATOR_CITY = envstr("OPERATOR_CITY", "Bucharest" if _DEMO else "")
OPERATOR_COUNTRY = envstr("OPERATOR_COUNTRY", "RO").upper()  # ISO 3166 alpha-2
OPERATOR_TAX_ID = envstr("OPERATOR_TAX_ID", "18547290" if _DEMO else "")
OPERATOR_VAT_ID = envstr("OPERATOR_VAT_ID", "RO18547290" if _DEMO else "")
OPERATOR_REGISTRATION = envstr("OPERATOR_REGISTRATION", "J40/1234/2006" if _DEMO else "")
OPERATOR_EMAIL = envstr("OPERATOR_EMAIL", "billing@example.com" if _DEMO else "")
OPERATOR_PHONE = envstr("OPERATOR_PHONE", "")
OPERATOR_IBAN = envstr("OPERATOR_IBAN", "RO49AAAA1B31007593840000" if _DEMO else "")
OPERATOR_BIC = envstr("OPERATOR_BIC", "AAAAROBU" if _DEMO else "")
OPERATOR_BANK_NAME = envstr("OPERATOR_BANK_NAME", "Demo Bank" if _DEMO else "")
# Payment reference printed next to the RF reference: rf (none), sk, it, ro or pl
# (billing.references); the scheme's own settings follow.
OPERATOR_REFERENCE_SCHEME = envstr("OPERATOR_REFERENCE_SCHEME", "rf")
OPERATOR_REFERENCE_SETTINGS = {
    "sk_constant_symbol": envstr("OPERATOR_SK_CONSTANT_SYMBOL", "0308"),
    "it_aux_digit": envstr("OPERATOR_IT_AUX_DIGIT", "3"),
    "it_segregation_code": envstr("OPERATOR_IT_SEGREGATION_CODE", "01" if _DEMO else ""),
    "it_application_code": envstr("OPERATOR_IT_APPLICATION_CODE", ""),
    "ro_supplier_id": envstr("OPERATOR_RO_SUPPLIER_ID", "001" if _DEMO else ""),
    "pl_bank_fixed_part": envstr("OPERATOR_PL_BANK_FIXED_PART", ""),
}
# Set (11 digits) to print the pagoPA QR code on Italian documents.
OPERATOR_PAGOPA_FISCAL_CODE = envstr("OPERATOR_PAGOPA_FISCAL_CODE", "")

# --- Static and media -------------------------------------------------------

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(envstr("STATIC_ROOT", str(BASE_DIR / "var" / "staticfiles")))
MEDIA_ROOT = Path(envstr("MEDIA_ROOT", str(BASE_DIR / "var" / "media")))
# Outside production whitenoise serves straight from the source folders.
WHITENOISE_USE_FINDERS = not PRODUCTION
WHITENOISE_AUTOREFRESH = not PRODUCTION
if not PRODUCTION:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)
MEDIA_URL = "/media/"  # never served directly: downloads go through scoped views
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- E-mail and SMS ---------------------------------------------------------

EMAIL_BACKEND = envstr(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if PRODUCTION
    else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_HOST = envstr("EMAIL_HOST", "localhost")
EMAIL_PORT = envint("EMAIL_PORT", 25)
EMAIL_HOST_USER = envstr("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = envstr("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = envbool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = envint("EMAIL_TIMEOUT", 30)
DEFAULT_FROM_EMAIL = envstr("DEFAULT_FROM_EMAIL", "Guichet <no-reply@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# "console" writes to the log and var/sms.log; "twilio" sends through the HTTP API.
SMS_PROVIDER = envstr("SMS_PROVIDER", "console")
SMS_FROM = envstr("SMS_FROM", "Guichet")
SMS_TWILIO_ACCOUNT_SID = envstr("SMS_TWILIO_ACCOUNT_SID")
SMS_TWILIO_AUTH_TOKEN = envstr("SMS_TWILIO_AUTH_TOKEN")
SMS_TWILIO_BASE_URL = envstr("SMS_TWILIO_BASE_URL", "https://api.twilio.com")
SMS_LOG_FILE = Path(envstr("SMS_LOG_FILE", str(BASE_DIR / "var" / "sms.log")))
OUTBOX_MAX_ATTEMPTS = envint("OUTBOX_MAX_ATTEMPTS", 5)

# Receivables: the largest statement or collection file accepted (bytes).
PAYMENT_IMPORT_MAX_BYTES = envint("PAYMENT_IMPORT_MAX_BYTES", 100 * 1024**2)

# --- Billing ----------------------------------------------------------------

# What one paper invoice costs to post (operator's currency): the run page reports
# the postage e-billing saved.
BILLING_POSTAGE_PER_LETTER = envdecimal("BILLING_POSTAGE_PER_LETTER", "2.50")
# Invoices per Celery task when a run is issued, rendered and delivered.
BILLING_RUN_CHUNK_SIZE = envint("BILLING_RUN_CHUNK_SIZE", 25)
# Letters per print batch (one merged PDF each).
BILLING_PRINT_BATCH_SIZE = envint("BILLING_PRINT_BATCH_SIZE", 500)

# --- Dunning ----------------------------------------------------------------

# Registered dunning letters take S10 numbers from the ranges (admin: S10 ranges)
# of this service indicator and the postal operator's country.
DUNNING_S10_PREFIX = envstr("DUNNING_S10_PREFIX", "RR").upper()
DUNNING_S10_COUNTRY = envstr("DUNNING_S10_COUNTRY", OPERATOR_COUNTRY).upper()
# The "pay by" date a notice names: this many days after it is sent.
DUNNING_PAY_WITHIN_DAYS = envint("DUNNING_PAY_WITHIN_DAYS", 10)

# --- Logging ----------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
    # WeasyPrint logs every rendering step at INFO.
    # factur-x logs every embedded XML at INFO.
    "loggers": {
        "pgserver": {"level": "WARNING"},
        "weasyprint.progress": {"level": "WARNING"},
        "factur-x": {"level": "WARNING"},
    },
}

# --- Tests ------------------------------------------------------------------

if ENVIRONMENT == "test":
    # One test database per run, so parallel runs on one server don't collide.
    DATABASES["default"]["TEST"] = {"NAME": envstr("TEST_DB_NAME", f"test_guichet_{os.getpid()}")}
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    CELERY_TASK_ALWAYS_EAGER = envbool("CELERY_TASK_ALWAYS_EAGER", True)
    EMAIL_BACKEND = envstr("EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")
    CACHES["default"]["KEY_PREFIX"] = (
        f"guichet-test-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
    )
    # The tests empty their cache between tests (FLUSHDB): a database of its own,
    # so a running worker's queue (the broker, database 0) is never wiped.
    CACHES["default"]["LOCATION"] = redis_database(REDIS_URL, envint("TEST_CACHE_DB", 15))
    MEDIA_ROOT = BASE_DIR / "var" / "test-media"
    SMS_LOG_FILE = BASE_DIR / "var" / "test-sms.log"

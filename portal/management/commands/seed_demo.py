"""Demo data to try Guichet with: staff for every role, customers, logins.

    python manage.py seed_demo                    # idempotent: a second run adds nothing
    python manage.py seed_demo --customers 100000 # plus that many generated customers

Every demo login uses the password ``guichet-demo-2026``; staff have TOTP on
with one fixed demo secret (``python manage.py demo_totp <email>`` prints the
current code). Refuses to run in production unless ``--force`` is given.
"""

from __future__ import annotations

import random
import time
import unicodedata
import uuid
from dataclasses import dataclass, field
from typing import Any

from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP
from allauth.mfa.utils import decrypt
from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from django.utils import timezone
from stdnum import luhn
from stdnum.it import codicefiscale
from stdnum.pl import pesel
from stdnum.ro import cnp, cui

from portal import services
from portal.models import Customer, CustomerKind, Membership, MembershipRole, Representative, User
from portal.roles import Role

DEMO_PASSWORD = "guichet-demo-2026"
# Base32; shared by every demo staff login so that one authenticator app entry
# (or `manage.py demo_totp`) serves them all. Never used outside demo data.
DEMO_TOTP_SECRET = "GUICHETDEMOTOTPSECRETFORSTAFF234"
DEMO_DOMAIN = "guichet.example"
ADMIN_EMAIL = f"admin@{DEMO_DOMAIN}"
BATCH_SIZE = 5_000

# Role → (first name, last name, language) of its demo staff member.
STAFF: dict[Role, tuple[str, str, str]] = {
    Role.CUSTOMER_SERVICE: ("Ioana", "Dumitrescu", "ro"),
    Role.BILLING: ("Marek", "Nowak", "pl"),
    Role.COLLECTIONS: ("Giulia", "Romano", "it"),
    Role.METER_READING: ("Peter", "Horváth", "sk"),
    Role.COURIER: ("Andrei", "Stan", "ro"),
    Role.ESTIMATOR: ("Katarzyna", "Wiśniewska", "pl"),
    Role.ADMINISTRATOR: ("Lucia", "Bianchi", "it"),
}


@dataclass(frozen=True)
class DemoRepresentative:
    first_name: str
    last_name: str
    function: str
    email: str
    phone: str
    # With a role the representative gets a portal login with that role.
    role: MembershipRole | None = None
    language: str = "en"


@dataclass(frozen=True)
class DemoCustomer:
    fields: dict[str, Any]
    representatives: list[DemoRepresentative] = field(default_factory=list)


# fmt: off
ELENA = DemoRepresentative("Elena", "Ionescu", "", "elena.ionescu@example.com",
                           "+40 744 120 311", MembershipRole.OWNER, "ro")

# Tax ids are real-format numbers with correct check digits, made up for the demo.
DEMO_CUSTOMERS: list[DemoCustomer] = [
    DemoCustomer(
        {"kind": CustomerKind.PERSON, "first_name": "Elena", "last_name": "Ionescu",
         "tax_id": "2780315120011", "street": "Str. Avram Iancu 12, ap. 4",
         "postal_code": "400083", "city": "Cluj-Napoca", "country": "RO", "language": "ro",
         "email": "elena.ionescu@example.com", "mobile": "+40 744 120 311",
         "consent_ebilling": True, "consent_electronic_delivery": True},
        [ELENA],
    ),
    DemoCustomer(
        {"kind": CustomerKind.COMPANY, "company_name": "Brutăria Moldova SRL",
         "tax_id": "32156785", "vat_id": "RO32156785", "street": "Bd. Ștefan cel Mare 110",
         "postal_code": "700498", "city": "Iași", "country": "RO", "language": "ro",
         "email": "contabilitate@brutaria-moldova.example.com", "mobile": "+40 232 210 455",
         "consent_ebilling": True},
        [
            ELENA,
            DemoRepresentative("Cristian", "Moldovan", "Director", "cristian.moldovan@example.com",
                               "+40 745 300 200", MembershipRole.MANAGER, "ro"),
            DemoRepresentative("Ana", "Rusu", "Contabilă", "ana.rusu@example.com",
                               "+40 746 410 870", MembershipRole.VIEWER, "en"),
        ],
    ),
    DemoCustomer(
        {"kind": CustomerKind.PERSON, "first_name": "Andrei", "last_name": "Popescu",
         "tax_id": "1800912400312", "street": "Bd. Unirii 21, bl. 3, ap. 17",
         "postal_code": "030823", "city": "București", "country": "RO", "language": "ro",
         "mobile": "+40 721 555 019"},
        [DemoRepresentative("Andrei", "Popescu", "", "", "+40 721 555 019")],
    ),
    DemoCustomer(
        {"kind": CustomerKind.PERSON, "first_name": "Tomasz", "last_name": "Kowalczyk",
         "tax_id": "82071412357", "street": "ul. Długa 14 m. 3", "postal_code": "31-147",
         "city": "Kraków", "country": "PL", "language": "pl",
         "email": "tomasz.kowalczyk@example.com", "mobile": "+48 601 220 334",
         "consent_ebilling": True, "consent_electronic_delivery": True},
        [DemoRepresentative("Tomasz", "Kowalczyk", "", "tomasz.kowalczyk@example.com",
                            "+48 601 220 334", MembershipRole.OWNER, "pl")],
    ),
    DemoCustomer(
        {"kind": CustomerKind.COMPANY, "company_name": "Piekarnia Zielińscy Sp. z o.o.",
         "tax_id": "7781234563", "vat_id": "PL7781234563", "street": "ul. Półwiejska 32",
         "postal_code": "61-888", "city": "Poznań", "country": "PL", "language": "pl",
         "email": "biuro@piekarnia-zielinscy.example.com", "mobile": "+48 61 852 11 40",
         "consent_electronic_delivery": True},
        [
            DemoRepresentative("Agnieszka", "Zielińska", "Prezes zarządu",
                               "agnieszka.zielinska@example.com", "+48 602 118 900",
                               MembershipRole.OWNER, "pl"),
            DemoRepresentative("Piotr", "Zieliński", "Prokurent", "piotr.zielinski@example.com",
                               "+48 603 441 207"),
        ],
    ),
    DemoCustomer(
        {"kind": CustomerKind.PERSON, "first_name": "Francesca", "last_name": "Ricci",
         "tax_id": "RCCFNC84E62L219T", "street": "Via Giuseppe Garibaldi 8",
         "postal_code": "10122", "city": "Torino", "country": "IT", "language": "it",
         "email": "francesca.ricci@example.com", "mobile": "+39 347 112 9087",
         "consent_electronic_delivery": True},
        [DemoRepresentative("Francesca", "Ricci", "", "francesca.ricci@example.com",
                            "+39 347 112 9087")],
    ),
    DemoCustomer(
        {"kind": CustomerKind.COMPANY, "company_name": "Trattoria Da Marco S.r.l.",
         "tax_id": "08743120639", "vat_id": "IT08743120639", "street": "Via dei Mille 27",
         "postal_code": "80121", "city": "Napoli", "country": "IT", "language": "it",
         "email": "amministrazione@damarco.example.com", "mobile": "+39 081 764 3321",
         "consent_ebilling": True},
        [DemoRepresentative("Marco", "Esposito", "Amministratore unico",
                            "marco.esposito@example.com", "+39 335 601 4472",
                            MembershipRole.OWNER, "it")],
    ),
    DemoCustomer(
        {"kind": CustomerKind.PERSON, "first_name": "Jana", "last_name": "Kováčová",
         "tax_id": "7957081231", "street": "Hlavná 45", "postal_code": "040 01",
         "city": "Košice", "country": "SK", "language": "sk", "mobile": "+421 905 331 778"},
        [DemoRepresentative("Jana", "Kováčová", "", "", "+421 905 331 778")],
    ),
    DemoCustomer(
        {"kind": CustomerKind.COMPANY, "company_name": "Tatra Stav s.r.o.",
         "tax_id": "36845728", "vat_id": "SK2022845704", "street": "Námestie SNP 7",
         "postal_code": "974 01", "city": "Banská Bystrica", "country": "SK",
         "language": "sk", "email": "fakturacia@tatrastav.example.com",
         "mobile": "+421 48 415 2020", "consent_ebilling": True,
         "consent_electronic_delivery": True},
        [
            DemoRepresentative("Martin", "Kováč", "Konateľ", "martin.kovac@example.com",
                               "+421 903 250 114", MembershipRole.OWNER, "sk"),
            DemoRepresentative("Zuzana", "Nagyová", "Účtovníčka", "zuzana.nagyova@example.com",
                               "+421 907 660 215", MembershipRole.VIEWER, "sk"),
        ],
    ),
]
# fmt: on


@dataclass
class Login:
    email: str
    role: str
    url: str
    totp_secret: str = ""


class Command(BaseCommand):
    help = "Create demo staff, customers and logins (idempotent); --customers N adds N more."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--customers",
            type=int,
            default=0,
            metavar="N",
            help="Also create N generated customers (bulk insert).",
        )
        parser.add_argument(
            "--force", action="store_true", help="Run even when settings.PRODUCTION is on."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.PRODUCTION and not options["force"]:
            raise CommandError(
                "Refusing to load demo data into production (its logins share a published "
                "password); add --force if this really is a demo server."
            )
        count: int = options["customers"]
        if count < 0:
            raise CommandError("--customers must be 0 or more.")
        with transaction.atomic():
            staff, customers = seed()
        self.stdout.write(render_logins(staff, customers))
        if count:
            started = time.perf_counter()
            create_generated_customers(count)
            elapsed = time.perf_counter() - started
            self.stdout.write(f"Created {count:,} generated customers in {elapsed:.1f} s.")


# --- The fixed demo set ------------------------------------------------------


def seed() -> tuple[list[Login], list[Login]]:
    """Create what is missing of the demo set; return the staff and customer logins."""
    password = make_password(DEMO_PASSWORD)  # hashed once: PBKDF2 is slow on purpose
    staff_logins: list[Login] = []

    admin = ensure_user(
        ADMIN_EMAIL, "Radu", "Marinescu", "ro", password, is_staff=True, is_superuser=True
    )
    admin.groups.add(Group.objects.get(name=Role.ADMINISTRATOR.value))
    staff_logins.append(
        Login(ADMIN_EMAIL, "Operator (superuser)", f"{settings.SITE_URL}/admin/", ensure_mfa(admin))
    )
    for role, (first, last, language) in STAFF.items():
        email = f"{role.value}@{DEMO_DOMAIN}"
        user = ensure_user(email, first, last, language, password)
        user.groups.add(Group.objects.get(name=role.value))
        area = "/courier/" if role == Role.COURIER else "/office/"
        staff_logins.append(
            Login(email, str(role.label), f"{settings.SITE_URL}{area}", ensure_mfa(user))
        )

    roles_of: dict[str, list[str]] = {}
    for spec in DEMO_CUSTOMERS:
        customer = ensure_customer(spec, created_by=admin)
        for rep_spec in spec.representatives:
            rep = ensure_representative(customer, rep_spec)
            if rep_spec.role is None:
                continue
            user = ensure_user(
                rep_spec.email, rep_spec.first_name, rep_spec.last_name, rep_spec.language, password
            )
            if rep.user_id is None:
                rep.user = user
                rep.save(update_fields=["user"])
            Membership.objects.get_or_create(
                user=user,
                customer=customer,
                defaults={"role": rep_spec.role, "representative": rep},
            )
            roles_of.setdefault(user.email, []).append(
                f"{MembershipRole(rep_spec.role).label.lower()} of {customer.name}"
            )
    customer_logins = [
        Login(email, ", ".join(roles), f"{settings.SITE_URL}/") for email, roles in roles_of.items()
    ]
    seed_supply_points()
    return staff_logins, customer_logins


def ensure_user(
    email: str, first_name: str, last_name: str, language: str, password: str, **flags: bool
) -> User:
    """The user with this e-mail (created with the demo password if missing), verified."""
    user = User.objects.filter(email=email).first()
    if user is None:
        user = User.objects.create(
            email=email,
            first_name=first_name,
            last_name=last_name,
            language=language,
            password=password,
            **flags,
        )
    EmailAddress.objects.update_or_create(
        user=user, email=email, defaults={"verified": True, "primary": True}
    )
    return user


def ensure_mfa(user: User) -> str:
    """Turn TOTP (demo secret) and recovery codes on; return the TOTP secret in use."""
    authenticator = Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).first()
    if authenticator is None:
        authenticator = TOTP.activate(user, DEMO_TOTP_SECRET).instance
    RecoveryCodes.activate(user)
    secret = decrypt(authenticator.data["secret"])
    return secret if secret == DEMO_TOTP_SECRET else "(own authenticator)"


def ensure_customer(spec: DemoCustomer, *, created_by: User) -> Customer:
    fields = spec.fields
    existing = Customer.objects.filter(country=fields["country"], tax_id=fields["tax_id"]).first()
    if existing is not None:
        return existing
    customer = Customer(**fields)
    customer.clean()  # normalises phone numbers and tax ids, proves the ids valid
    return services.create_customer(customer=customer, created_by=created_by)


def ensure_representative(customer: Customer, spec: DemoRepresentative) -> Representative:
    rep = customer.representatives.filter(
        first_name=spec.first_name, last_name=spec.last_name
    ).first()
    if rep is None:
        rep = Representative(
            customer=customer,
            first_name=spec.first_name,
            last_name=spec.last_name,
            function=spec.function,
            email=spec.email,
            phone=spec.phone,
        )
        rep.clean()
        rep.save()
    return rep


def render_logins(staff: list[Login], customers: list[Login]) -> str:
    staff_rows = [
        [login.url, login.email, DEMO_PASSWORD, login.role, login.totp_secret] for login in staff
    ]
    customer_rows = [[login.url, login.email, DEMO_PASSWORD, login.role] for login in customers]
    return "\n".join(
        [
            "",
            "Staff (password, then a 6-digit code from an authenticator app):",
            table(["URL", "E-mail", "Password", "Role", "TOTP secret"], staff_rows),
            "  Current code of a demo staff login: python manage.py demo_totp <email>",
            "",
            "Customer portal:",
            table(["URL", "E-mail", "Password", "Role"], customer_rows),
            "",
        ]
    )


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=False)]

    def line(cells: list[str]) -> str:
        return (
            "  "
            + "  ".join(
                cell.ljust(width) for cell, width in zip(cells, widths, strict=True)
            ).rstrip()
        )

    rule = "  " + "  ".join("-" * width for width in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


# --- Generated customers (--customers N) -------------------------------------

# Country → language, phone prefix, (city, postal code, Italian town code), streets,
# (male first names), (female first names), (male surname, female surname) pairs,
# company name patterns.
# fmt: off
COUNTRIES: dict[str, dict[str, Any]] = {
    "RO": {
        "language": "ro", "phone": ("+407", 8),
        "cities": [("București", "030167", ""), ("Cluj-Napoca", "400001", ""),
                   ("Iași", "700028", ""), ("Timișoara", "300011", ""),
                   ("Constanța", "900178", ""), ("Brașov", "500030", "")],
        "streets": ["Str. Mihai Eminescu", "Bd. Unirii", "Str. Florilor", "Calea Victoriei",
                    "Str. Avram Iancu", "Aleea Teilor", "Str. Republicii"],
        "male": ["Andrei", "Mihai", "Alexandru", "Ion", "Gheorghe", "Radu", "Cristian", "Vlad",
                 "Florin", "Bogdan"],
        "female": ["Elena", "Maria", "Ioana", "Ana", "Cristina", "Andreea", "Mihaela", "Raluca",
                   "Diana", "Gabriela"],
        "surnames": [(s, s) for s in ["Popescu", "Ionescu", "Popa", "Dumitru", "Stan", "Stoica",
                                      "Matei", "Ciobanu", "Rusu", "Munteanu", "Constantin",
                                      "Marin", "Florea", "Dinu"]],
        "companies": ["{s} Impex SRL", "{s} & Asociații SRL", "{c} Construct SRL",
                      "Ferma {s} SRL"],
    },
    "PL": {
        "language": "pl", "phone": ("+486", 8),
        "cities": [("Warszawa", "00-950", ""), ("Kraków", "31-042", ""), ("Łódź", "90-001", ""),
                   ("Wrocław", "50-077", ""), ("Poznań", "61-772", ""), ("Gdańsk", "80-831", "")],
        "streets": ["ul. Marszałkowska", "ul. Długa", "ul. Piotrkowska", "ul. Świętokrzyska",
                    "al. Jerozolimskie", "ul. Mickiewicza", "ul. Kościuszki"],
        "male": ["Piotr", "Krzysztof", "Tomasz", "Paweł", "Michał", "Marcin", "Jakub", "Andrzej"],
        "female": ["Anna", "Katarzyna", "Magdalena", "Agnieszka", "Joanna", "Małgorzata", "Ewa",
                   "Zofia"],
        "surnames": [("Kowalski", "Kowalska"), ("Wiśniewski", "Wiśniewska"), ("Nowak", "Nowak"),
                     ("Wójcik", "Wójcik"), ("Kamiński", "Kamińska"),
                     ("Lewandowski", "Lewandowska"), ("Zieliński", "Zielińska"),
                     ("Szymański", "Szymańska"), ("Woźniak", "Woźniak"),
                     ("Dąbrowski", "Dąbrowska")],
        "companies": ["{s} Sp. z o.o.", "P.H.U. {s}", "{c} Serwis Sp. z o.o."],
    },
    "IT": {
        "language": "it", "phone": ("+393", 9),
        "cities": [("Roma", "00184", "H501"), ("Milano", "20121", "F205"),
                   ("Napoli", "80121", "F839"), ("Torino", "10121", "L219"),
                   ("Bologna", "40121", "A944"), ("Firenze", "50121", "D612")],
        "streets": ["Via Roma", "Via Garibaldi", "Corso Italia", "Via Mazzini", "Via Verdi",
                    "Piazza Dante", "Via Cavour"],
        "male": ["Marco", "Giuseppe", "Luca", "Francesco", "Alessandro", "Andrea", "Matteo",
                 "Lorenzo"],
        "female": ["Giulia", "Francesca", "Chiara", "Sara", "Martina", "Elena", "Valentina",
                   "Alessia"],
        "surnames": [(s, s) for s in ["Rossi", "Russo", "Ferrari", "Esposito", "Bianchi",
                                      "Romano", "Colombo", "Ricci", "Marino", "Greco", "Bruno",
                                      "Gallo"]],
        "companies": ["{s} S.r.l.", "{s} & Figli S.n.c.", "Officine {c} S.p.A."],
    },
    "SK": {
        "language": "sk", "phone": ("+4219", 8),
        "cities": [("Bratislava", "811 01", ""), ("Košice", "040 01", ""),
                   ("Prešov", "080 01", ""), ("Žilina", "010 01", ""), ("Nitra", "949 01", ""),
                   ("Banská Bystrica", "974 01", "")],
        "streets": ["Hlavná", "Štúrova", "Hviezdoslavova", "Námestie SNP", "Mlynská",
                    "Obchodná", "Kpt. Nálepku"],
        "male": ["Peter", "Martin", "Ján", "Michal", "Tomáš", "Lukáš", "Marek", "Juraj"],
        "female": ["Mária", "Jana", "Eva", "Zuzana", "Katarína", "Lucia", "Martina", "Veronika"],
        "surnames": [("Horváth", "Horváthová"), ("Kováč", "Kováčová"), ("Varga", "Vargová"),
                     ("Tóth", "Tóthová"), ("Nagy", "Nagyová"), ("Baláž", "Balážová"),
                     ("Szabó", "Szabóová"), ("Molnár", "Molnárová")],
        "companies": ["{s} s.r.o.", "{c} Stav s.r.o.", "{s} a syn, s.r.o."],
    },
}
# fmt: on


_CF_MONTHS = "ABCDEHLMPRST"


def create_generated_customers(count: int) -> int:
    """Insert ``count`` generated customers, numbered from the customer sequence.

    Rows stream into PostgreSQL with COPY, 5,000 per statement: with
    bulk_create, building a model instance per row and quoting its parameters
    made 100,000 customers take ~45 s instead of ~16 s (2 cores); the
    database's own work (search vector, GIN index) is the same either way.
    search_text still comes from Customer.build_search_text(), so generated
    customers are found like any other.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval('portal_customer_number_seq') FROM generate_series(1, %s)", [count]
        )
        numbers = [row[0] for row in cursor.fetchall()]
    fake = CustomerFaker(random.Random(numbers[0]))  # noqa: S311 - demo data, not secrets
    fields = [f for f in Customer._meta.concrete_fields if not f.primary_key and not f.generated]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    sql = f"COPY {Customer._meta.db_table} ({columns}) FROM STDIN"  # noqa: S608 - our own names
    with transaction.atomic(), connection.cursor() as cursor:
        for start in range(0, count, BATCH_SIZE):
            now = timezone.now()
            with cursor.cursor.copy(sql) as copy:
                for value in numbers[start : start + BATCH_SIZE]:
                    row = fake.customer(f"C{value:07d}")
                    row.update(public_id=uuid.uuid4(), created_at=now, updated_at=now)
                    copy.write_row([row[f.attname] for f in fields])
    return count


class CustomerFaker:
    """Plausible customers of the four countries, with tax ids whose check digits hold."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        # One instance computes search_text for every row: building a model
        # instance per row would double the time of a large run.
        self._scratch = Customer()

    def customer(self, number: str) -> dict[str, Any]:
        """Field values of one customer (all but public_id and the timestamps)."""
        rng = self.rng
        country = rng.choice(("RO", "RO", "PL", "IT", "SK"))
        data = COUNTRIES[country]
        city, postal_code, town_code = rng.choice(data["cities"])
        female = rng.random() < 0.5
        first = rng.choice(data["female" if female else "male"])
        last = rng.choice(data["surnames"])[1 if female else 0]
        row: dict[str, Any] = {
            "number": number,
            "kind": CustomerKind.PERSON.value,
            "first_name": "",
            "last_name": "",
            "company_name": "",
            "tax_id": "",
            "vat_id": "",
            "street": f"{rng.choice(data['streets'])} {rng.randint(1, 180)}",
            "postal_code": postal_code,
            "city": city,
            "country": country,
            "language": data["language"] if rng.random() < 0.85 else "en",
            "email": "",
            "mobile": "",
            "consent_ebilling": False,
            "consent_electronic_delivery": False,
        }
        if rng.random() < 0.8:
            row["first_name"], row["last_name"] = first, last
            row["tax_id"] = self.person_tax_id(country, first, last, female, town_code)
            local = f"{_ascii(first)}.{_ascii(last)}"
        else:
            row["kind"] = CustomerKind.COMPANY.value
            row["company_name"] = rng.choice(data["companies"]).format(s=last, c=city)
            row["tax_id"], row["vat_id"] = self.company_tax_ids(country)
            local = "office"
        if rng.random() < 0.8:
            row["email"] = f"{local}.{number.lower()}@example.com"
            row["consent_ebilling"] = rng.random() < 0.5
            row["consent_electronic_delivery"] = rng.random() < 0.4
        if rng.random() < 0.9:
            prefix, digits = data["phone"]
            row["mobile"] = prefix + "".join(rng.choices("0123456789", k=digits))
        self._scratch.__dict__.update(row)
        row["search_text"] = self._scratch.build_search_text()
        return row

    def _birth(self) -> tuple[int, int, int]:
        return self.rng.randint(1954, 1999), self.rng.randint(1, 12), self.rng.randint(1, 28)

    def _digits(self, count: int) -> str:
        return "".join(self.rng.choices("0123456789", k=count))

    def person_tax_id(
        self, country: str, first: str, last: str, female: bool, town_code: str
    ) -> str:
        year, month, day = self._birth()
        yy = f"{year % 100:02d}"
        if country == "RO":  # CNP: sex, yymmdd, county, serial, check
            base = f"{2 if female else 1}{yy}{month:02d}{day:02d}"
            base += f"{self.rng.randint(1, 40):02d}{self.rng.randint(1, 999):03d}"
            return base + cnp.calc_check_digit(base)
        if country == "PL":  # PESEL: yymmdd, serial whose last digit is even for women
            sex_digit = self.rng.choice("02468" if female else "13579")
            base = f"{yy}{month:02d}{day:02d}{self._digits(3)}{sex_digit}"
            return base + pesel.calc_check_digit(base)
        if country == "IT":  # codice fiscale
            base = (
                _cf_part(last, surname=True)
                + _cf_part(first, surname=False)
                + yy
                + _CF_MONTHS[month - 1]
                + f"{day + 40 if female else day:02d}"
                + town_code
            )
            return base + codicefiscale.calc_check_digit(base)
        # SK rodné číslo: yymmdd (+50 to the month for women), serial, whole number ≡ 0 mod 11
        base = f"{yy}{month + 50 if female else month:02d}{day:02d}{self._digits(3)}"
        return base + str(int(base) % 11 % 10)

    def company_tax_ids(self, country: str) -> tuple[str, str]:
        rng = self.rng
        if country == "RO":  # CUI
            base = str(rng.randint(100_000, 49_999_999))
            number = base + cui.calc_check_digit(base)
            return number, f"RO{number}"
        if country == "PL":  # NIP: weighted sum mod 11, 10 is never issued
            while True:
                base = str(rng.randint(101, 999)) + self._digits(6)
                check = (
                    sum(w * int(d) for w, d in zip((6, 5, 7, 2, 3, 4, 5, 6, 7), base, strict=True))
                    % 11
                )
                if check < 10:
                    return base + str(check), f"PL{base}{check}"
        if country == "IT":  # partita IVA: 7 digits, province office, Luhn check
            base = f"{rng.randint(1, 9_999_999):07d}{rng.randint(1, 100):03d}"
            number = base + luhn.calc_check_digit(base)
            return number, f"IT{number}"
        # SK: IČO (weighted mod 11) and a DIČ divisible by 11
        base = self._digits(7)
        total = sum(w * int(d) for w, d in zip(range(8, 1, -1), base, strict=True))
        ico = base + str((11 - total % 11) % 10)
        while True:
            prefix = f"20{rng.choice('234789')}{self._digits(6)}"
            for last in "0123456789":
                if int(prefix + last) % 11 == 0:
                    return ico, f"SK{prefix}{last}"


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return folded.lower().replace(" ", "")


def _cf_part(name: str, *, surname: bool) -> str:
    """The three letters a codice fiscale takes from a surname or a first name."""
    letters = _ascii(name).upper()
    consonants = [c for c in letters if c.isalpha() and c not in "AEIOU"]
    vowels = [c for c in letters if c in "AEIOU"]
    if not surname and len(consonants) >= 4:
        consonants = [consonants[0], consonants[2], consonants[3]]
    return "".join(consonants + vowels + ["X", "X", "X"])[:3]


# --- Demo supply points, meters and readings (meters app) ---------------------

# Monthly demo history: this many months of readings before the current month.
DEMO_READING_MONTHS = 18


def seed_supply_points() -> None:
    """Supply points with meters, registers, a contract and monthly readings for the demo set.

    Idempotent: a supply point is found by its code, and readings are added only to a
    register that has none.
    """
    for index, spec in enumerate(DEMO_CUSTOMERS, start=1):
        fields = spec.fields
        customer = Customer.objects.filter(
            country=fields["country"], tax_id=fields["tax_id"]
        ).first()
        if customer is None:
            continue
        company = fields["kind"] == CustomerKind.COMPANY
        ensure_demo_point(customer, index, "electricity", day_night=company)
        if company:
            ensure_demo_point(customer, index, "gas")
        elif index == 1:
            ensure_demo_point(customer, index, "water")


# Service → (code letter, meter serial prefix, unit, integer digits, decimals, kWh or m3 a day).
_DEMO_SERVICES: dict[str, tuple[str, str, str, int, int, str]] = {
    "electricity": ("E", "EM", "kWh", 6, 0, "9"),
    "gas": ("G", "GM", "m3", 5, 2, "4.5"),
    "water": ("W", "WM", "m3", 5, 2, "0.35"),
}


def ensure_demo_point(
    customer: Customer, index: int, service: str, *, day_night: bool = False
) -> None:
    from datetime import date, datetime, time
    from decimal import Decimal

    from meters.models import Contract, Meter, Reading, ReadingSource, Register, SupplyPoint

    letter, serial_prefix, unit, digits, decimals, daily = _DEMO_SERVICES[service]
    code = f"{customer.country}-{letter}-{index:04d}-{customer.number}"
    point, _ = SupplyPoint.objects.get_or_create(
        code=code,
        defaults={
            "customer": customer,
            "service": service,
            "street": customer.street,
            "postal_code": customer.postal_code,
            "city": customer.city,
            "self_reading_allowed": customer.kind == CustomerKind.PERSON or service == "gas",
            "access_notes": "Meter box by the entrance."
            if service != "water"
            else "Water meter in the basement; key at the caretaker's.",
        },
    )
    today = timezone.localdate()
    installed = date(today.year - 3, 1, 15)
    meter, _ = Meter.objects.get_or_create(
        supply_point=point,
        serial_number=f"{serial_prefix}-{index:03d}{letter}{customer.number[-4:]}",
        defaults={"installed_on": installed},
    )
    codes = [("1.8.1", "Day"), ("1.8.2", "Night")] if day_night else [("1.8.0", "Total")]
    if service != "electricity":
        codes = [("V", "Volume")]
    Contract.objects.get_or_create(
        number=f"K-{customer.number}-{letter}",
        defaults={
            "supply_point": point,
            "customer": customer,
            "product": {
                "electricity": "Energie Casnic",
                "gas": "Gaz Standard",
                "water": "Apă rece",
            }[service],
            "starts_on": installed,
        },
    )
    zone = timezone.get_current_timezone()
    for position, (register_code, name) in enumerate(codes):
        register, _ = Register.objects.get_or_create(
            meter=meter,
            code=register_code,
            defaults={"name": name, "unit": unit, "integer_digits": digits, "decimals": decimals},
        )
        if register.readings.exists():
            continue
        share = Decimal("0.4") if position else Decimal(1) if len(codes) == 1 else Decimal("0.6")
        step = Decimal(1).scaleb(-decimals)
        value = Decimal(1000 + 137 * index)
        readings: list[Reading] = []
        for back in range(DEMO_READING_MONTHS, 0, -1):
            month = today.month - back
            year = today.year + (month - 1) // 12
            day = date(year, (month - 1) % 12 + 1, 3 + index % 20)
            # More in winter, less in summer: deterministic, so reruns look the same.
            season = Decimal(1) + Decimal("0.35") * (
                1 if day.month in (11, 12, 1, 2) else -1 if day.month in (6, 7, 8) else 0
            )
            used = (Decimal(daily) * 30 * season * share).quantize(step)
            if readings:
                value += used
            readings.append(
                Reading(
                    register=register,
                    value=value,
                    read_on=day,
                    read_at=datetime.combine(day, time(10, 30), tzinfo=zone),
                    source=ReadingSource.CUSTOMER if back % 3 == 0 else ReadingSource.COURIER,
                    consumption=used if readings else None,
                )
            )
        Reading.objects.bulk_create(readings)

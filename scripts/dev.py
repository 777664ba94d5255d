"""Developer entry points behind `make run` and `make test`.

    python scripts/dev.py run     migrate, load demo data, serve web + worker + beat
    python scripts/dev.py test    run the test suite (extra arguments go to pytest)
    python scripts/dev.py stop    stop the embedded PostgreSQL and Redis

Without DATABASE_URL / REDIS_URL the embedded servers under var/ are started
(and reused by every process); with them set, those servers are used.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PY = sys.executable


def prepare_services() -> None:
    """Export DATABASE_URL / REDIS_URL, starting the embedded servers if needed."""
    from portal import embedded

    if not os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = embedded.postgres_uri()
    if not os.environ.get("REDIS_URL"):
        os.environ["REDIS_URL"] = f"unix://{embedded.redis_socket()}"


def manage(*args: str) -> None:
    subprocess.run([PY, "manage.py", *args], cwd=ROOT, check=True)  # noqa: S603


def compile_messages() -> None:
    if (ROOT / "locale").is_dir():
        manage("compilemessages", "-v", "0", "--ignore", ".venv", "--ignore", "var")


def run(argv: list[str]) -> int:
    os.environ.setdefault("GUICHET_ENV", "development")
    os.environ.setdefault("DEBUG", "true")
    prepare_services()
    manage("migrate", "--no-input", "-v", "0")
    compile_messages()
    manage("seed_demo")
    port = os.environ.get("PORT", "8000")
    procs = {
        "web": [PY, "manage.py", "runserver", f"127.0.0.1:{port}"],
        "worker": [
            PY,
            "-m",
            "celery",
            "-A",
            "portal",
            "worker",
            "-l",
            "info",
            "--concurrency",
            "2",
        ],
        "beat": [
            PY,
            "-m",
            "celery",
            "-A",
            "portal",
            "beat",
            "-l",
            "info",
            "-s",
            str(ROOT / "var" / "celerybeat-schedule"),
        ],
    }
    running = {name: subprocess.Popen(cmd, cwd=ROOT) for name, cmd in procs.items()}  # noqa: S603
    print(f"\n  Guichet runs at http://127.0.0.1:{port}/  (office: /office/, courier: /courier/)")
    print("  Press Ctrl-C to stop.\n", flush=True)
    try:
        while True:
            for name, proc in running.items():
                if proc.poll() is not None:
                    print(f"{name} stopped with exit code {proc.returncode}; stopping the rest.")
                    return proc.returncode or 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        return 0
    finally:
        for proc in running.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in running.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


def test(argv: list[str]) -> int:
    os.environ["GUICHET_ENV"] = "test"
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright + live_server
    embedded_used = not os.environ.get("DATABASE_URL")
    prepare_services()
    try:
        compile_messages()
        if not argv:
            # The whole suite also lints and type-checks, as CI does.
            for check in (["ruff", "check", "."], ["mypy", "."]):
                print("$", " ".join(check), flush=True)
                if subprocess.run([PY, "-m", *check], cwd=ROOT).returncode:  # noqa: S603
                    return 1
        return subprocess.run([PY, "-m", "pytest", *argv], cwd=ROOT).returncode  # noqa: S603
    finally:
        if embedded_used and os.environ.get("CI"):
            # Leave no server behind on a CI machine.
            from portal import embedded

            embedded.stop()


def stop(argv: list[str]) -> int:
    from portal import embedded

    embedded.stop()
    return 0


if __name__ == "__main__":
    commands = {"run": run, "test": test, "stop": stop}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print(__doc__)
        sys.exit(2)
    sys.exit(commands[sys.argv[1]](sys.argv[2:]))

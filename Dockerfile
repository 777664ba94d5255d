# syntax=docker/dockerfile:1
# Guichet: one image for every role (web, worker, beat, migrate); see
# deploy/entrypoint.sh and docker-compose.yml.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH \
    GUICHET_ENV=production \
    STATIC_ROOT=/app/staticfiles \
    MEDIA_ROOT=/data/media

# WeasyPrint renders through Pango/HarfBuzz; Noto and DejaVu cover the
# Romanian, Polish, Italian and Slovak alphabets; gettext compiles messages.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 \
        fonts-noto-core fonts-dejavu-core gettext \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 1000 guichet \
    && useradd --system --uid 1000 --gid guichet --create-home --home-dir /home/guichet \
        --shell /usr/sbin/nologin guichet

WORKDIR /app

# Dependencies first: this layer is rebuilt only when the lock file changes.
COPY requirements.lock ./
RUN python -m venv /opt/venv && pip install -r requirements.lock

COPY . .

# Settings read everything from the environment and connect to nothing at
# import time, so collectstatic runs with throwaway values; none of them stays
# in the image.
RUN SECRET_KEY=build-only-not-a-secret-build-only-not-a-secret-build-only \
    ALLOWED_HOSTS=build.invalid \
    DATABASE_URL=postgres://build:build@build.invalid:5432/build \
    REDIS_URL=redis://build.invalid:6379/0 \
    sh -ec ' \
        python manage.py collectstatic --no-input -v 0; \
        if find . -name "*.po" -not -path "./staticfiles/*" | grep -q .; then \
            python manage.py compilemessages -v 0 --ignore staticfiles; \
        fi; \
        python -m compileall -q /app' \
    && mkdir -p /app/var /data/media \
    && chown guichet:guichet /app/var /data/media

# The code stays owned by root: the app can write only var/ and media.
USER guichet
EXPOSE 8000
ENTRYPOINT ["sh", "/app/deploy/entrypoint.sh"]
CMD ["web"]

#!/bin/sh
# The image's entry point: one image, one role per container.
#
#   web               gunicorn on 0.0.0.0:8000 (deploy/gunicorn.conf.py)
#   worker            a Celery worker (WORKER_CONCURRENCY processes, default 2)
#   beat              the Celery beat scheduler; run exactly one
#   migrate           apply migrations (also re-syncs the staff role groups) and
#                     run the deployment checks; the compose `migrate` service
#   manage ARGS...    any manage.py command, e.g. `manage createsuperuser`
#   anything else     run as given, e.g. `sh`
set -eu

BEAT_SCHEDULE=/app/var/celerybeat-schedule

role="${1:-web}"
[ "$#" -gt 0 ] && shift

case "$role" in
    web)
        exec gunicorn --config /app/deploy/gunicorn.conf.py "$@"
        ;;
    worker)
        exec celery -A portal worker --loglevel "${LOG_LEVEL:-info}" \
            --concurrency "${WORKER_CONCURRENCY:-2}" "$@"
        ;;
    beat)
        exec celery -A portal beat --loglevel "${LOG_LEVEL:-info}" \
            --schedule "$BEAT_SCHEDULE" "$@"
        ;;
    migrate)
        python manage.py migrate --no-input "$@"
        exec python manage.py check --deploy
        ;;
    manage)
        exec python manage.py "$@"
        ;;
    *)
        exec "$role" "$@"
        ;;
esac

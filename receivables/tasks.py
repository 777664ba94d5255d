"""Celery tasks of receivables (Celery discovers this module; the tasks live with their code)."""

from receivables.dunning_tasks import *  # noqa: F403
from receivables.payment_tasks import *  # noqa: F403

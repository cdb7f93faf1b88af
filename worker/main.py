"""Entry point of the worker processes: `celery -A worker.main worker -Q train --pool=solo` (add -B
on one worker to run the sweeper's beat). Settings come from CHARQ_* variables.

Train workers use --pool=solo: the task runs in the process that touched CUDA, which must never fork.
"""
from worker import logs
from worker.celery_app import create_celery

celery = create_celery()
# Log format (CHARQ_LOG_FORMAT) and job ids on log lines, applied once Celery sets up logging.
logs.connect_signals(celery)

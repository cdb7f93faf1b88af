"""Settings and tables shared by the API and the workers. No Flask, no torch."""
from models.corpus import Corpus
from models.db import FINAL_STATUSES, Base, JobStatus, make_engine, make_sessions, utcnow
from models.event import Event
from models.generation_job import GenerationJob
from models.sample import Sample
from models.settings import Settings
from models.tenant import ApiKey, Tenant
from models.trained_model import TrainedModel
from models.training_job import Checkpoint, TrainingJob, TrainingMetric

__all__ = [
    "ApiKey", "Base", "Checkpoint", "Corpus", "Event", "FINAL_STATUSES", "GenerationJob",
    "JobStatus", "Sample", "Settings", "Tenant", "TrainedModel", "TrainingJob", "TrainingMetric",
    "make_engine", "make_sessions", "utcnow",
]

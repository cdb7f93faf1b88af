"""Recovery on PostgreSQL + Redis: killed workers, duplicate messages, a broker that lost its queue.

A Redis db of their own (14) so the session's shared worker (db 15) never takes these jobs; short leases.
"""
from __future__ import annotations

import dataclasses

import pytest
import redis

from models import make_engine, make_sessions
from tests.conftest import REDIS_URL
from tests.support import bearer, make_test_app, new_api_key, wait_for, wait_for_job
from tests.worker_support import events, submit_training, upload_corpus, wait_for_checkpoint
from worker.celery_app import TRAIN_TASK, create_celery
from worker.lstm.checkpoint import latest_checkpoint

_base, _db = REDIS_URL.rsplit("/", 1)
BROKER_URL = f"{_base}/{14 if _db != '14' else 13}"


@pytest.fixture(scope="module")
def rsettings(pg_settings, tmp_path_factory):
    redis.Redis.from_url(BROKER_URL).flushdb()
    return dataclasses.replace(pg_settings, broker_url=BROKER_URL, lease_s=4.0,
                               data_dir=tmp_path_factory.mktemp("data-recovery"))


@pytest.fixture(scope="module")
def rapp(rsettings):
    return make_test_app(rsettings)


@pytest.fixture
def rclient(rapp):
    return rapp.test_client()


@pytest.fixture
def rauth(rsettings):
    return bearer(new_api_key(rsettings.database))


@pytest.fixture
def rsessions(rsettings):
    engine = make_engine(rsettings.database)
    yield make_sessions(engine)
    engine.dispose()


def test_killed_worker_job_resumes_from_its_checkpoint(rsettings, start_worker, rclient, rauth,
                                                       rsessions, tiny_corpus):
    first = start_worker(rsettings)
    job = submit_training(rclient, rauth, upload_corpus(rclient, rauth, tiny_corpus)["id"],
                          checkpoint_every=10)
    wait_for_checkpoint(rsessions, job["id"])
    first.kill()
    resume_step = int(latest_checkpoint(rsettings.data_dir / "checkpoints" /
                                        f"training-job-{job['id']}").name.split("-")[1])

    second = start_worker(rsettings, beat=True)  # its sweeper re-sends the job once the lease expires
    done = wait_for_job(rclient, f"/v1/training-jobs/{job['id']}", rauth, timeout=90)
    assert done["status"] == "succeeded" and done["attempts"] == 2, done
    assert done["worker"].endswith(f":{second.proc.pid}")  # hostname:pid of the one that finished
    kinds = [(e.kind, e.message) for e in events(rsessions, job["id"])]
    assert ("resumed", f"resumed from step {resume_step}") in kinds
    assert [k for k, _ in kinds].count("started") == 2
    assert "resuming from" in second.log()


def test_duplicate_messages_train_once(rsettings, start_worker, rclient, rauth, rsessions, tiny_corpus):
    holder = start_worker(rsettings)
    other = start_worker(rsettings)
    job = submit_training(rclient, rauth, upload_corpus(rclient, rauth, tiny_corpus)["id"])
    wait_for_job(rclient, f"/v1/training-jobs/{job['id']}", rauth, timeout=30,
                 statuses={"running", "succeeded"})
    celery = create_celery(rsettings)
    celery.send_task(TRAIN_TASK, args=[job["id"]])
    celery.send_task(TRAIN_TASK, args=[job["id"]])
    done = wait_for_job(rclient, f"/v1/training-jobs/{job['id']}", rauth, timeout=60)
    assert done["status"] == "succeeded" and done["attempts"] == 1, done
    assert [e.kind for e in events(rsessions, job["id"])].count("started") == 1
    dropped = f"training job {job['id']}: not claimable"
    wait_for(lambda: (holder.log() + other.log()).count(dropped) == 2, timeout=30,
             what="both duplicates to be dropped")


def test_sweeper_resends_a_job_the_broker_lost(rsettings, start_worker, rclient, rauth, tiny_corpus):
    job = submit_training(rclient, rauth, upload_corpus(rclient, rauth, tiny_corpus)["id"], max_steps=5)
    assert rclient.get(f"/v1/training-jobs/{job['id']}", headers=rauth).get_json()["enqueued_at"]
    redis.Redis.from_url(BROKER_URL).flushdb()  # the message is gone; the row still says queued

    worker = start_worker(rsettings, beat=True)
    done = wait_for_job(rclient, f"/v1/training-jobs/{job['id']}", rauth, timeout=60)
    assert done["status"] == "succeeded" and done["attempts"] == 1, done
    assert f"training job {job['id']}: re-enqueued by the sweeper" in worker.log()

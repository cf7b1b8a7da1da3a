-- The queue's SQL for SQLite, one named statement each (loaded by sql/__init__.py).
-- Parameters are :name; :now is a timestamp, :types expands to a list.
-- The settle rule itself (which state a resource goes to when its job ends) is
-- states.settle_map(); here it is only applied.

-- name: claim
-- The oldest due queued job (of :types unless :all_types) -> running, under the claim id :worker.
-- BEGIN IMMEDIATE (storage/db.py) serialises claims; the state event follows (insert_job_event).
UPDATE jobs SET state = 'running', worker_id = :worker, attempts = attempts + 1,
    started_at = :now, heartbeat_at = :now, updated_at = :now,
    deadline_at = datetime(:now, '+' || timeout_seconds || ' seconds'),
    event_seq = event_seq + 1
WHERE id = (SELECT id FROM jobs WHERE state = 'queued' AND (not_before IS NULL OR not_before <= :now)
            AND (:all_types OR type IN :types) ORDER BY id LIMIT 1)
  AND state = 'queued'
RETURNING *

-- name: heartbeat
-- Liveness of one attempt: job id, running, its claim id and attempt number must all match.
UPDATE jobs SET heartbeat_at = :now
WHERE id = :id AND state = 'running' AND worker_id = :worker AND attempts = :attempt
RETURNING cancel_requested

-- name: finish
-- A running job ends (lock released); with :worker, only that claim's attempt may end it.
UPDATE jobs SET state = :state, lock_key = NULL, finished_at = :now, updated_at = :now,
    error_code = :code, error_message = :msg, event_seq = event_seq + 1
WHERE id = :id AND state = 'running'
  AND (:worker IS NULL OR (worker_id = :worker AND attempts = :attempt))
RETURNING *

-- name: next_event_seq
UPDATE jobs SET event_seq = event_seq + 1 WHERE id = :job_id RETURNING event_seq

-- name: insert_job_event
-- Every job event, whoever writes it (claim, finish, transitions, the runner).
INSERT INTO job_events (job_id, seq, kind, data, created_at) VALUES (:job_id, :seq, :kind, :data, :now)

-- name: state_of_sites
SELECT name, state FROM sites WHERE id = :id

-- name: state_of_environments
SELECT name, state FROM environments WHERE id = :id

-- name: state_of_nodes
SELECT name, state FROM nodes WHERE id = :id

-- name: settle_sites
-- Guarded by the state just read: a concurrent change makes this a no-op (rowcount 0).
UPDATE sites SET state = :new, updated_at = :now WHERE id = :id AND state = :old

-- name: settle_environments
UPDATE environments SET state = :new, updated_at = :now WHERE id = :id AND state = :old

-- name: settle_nodes
UPDATE nodes SET state = :new, updated_at = :now WHERE id = :id AND state = :old

-- name: insert_audit
INSERT INTO audit_log (actor, action, target, result, detail, created_at)
VALUES (:actor, 'transition', :target, :result, :detail, :now)

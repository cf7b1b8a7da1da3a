-- The queue's SQL for PostgreSQL, one named statement each (loaded by sql/__init__.py), in
-- psycopg's %(name)s style: queue/_fastpath.py runs them as prepared statements straight on
-- psycopg, each in autocommit and atomic on its own (one round trip: the state event and the
-- settling of the job's resources are part of the statement).
-- The settle rule itself (which state a resource goes to when its job ends) is
-- states.settle_map(), passed as the JSON object %(settle)s {"old state": "new state"}.

-- name: claim
-- The oldest due queued job (of %(types)s unless %(all_types)s) -> running under the claim id
-- %(worker)s, with its state event.
WITH j AS (
    UPDATE jobs SET state = 'running', worker_id = %(worker)s, attempts = attempts + 1,
        started_at = %(now)s, heartbeat_at = %(now)s, updated_at = %(now)s,
        deadline_at = CAST(%(now)s AS TIMESTAMP) + timeout_seconds * interval '1 second',
        event_seq = event_seq + 1
    WHERE id = (SELECT id FROM jobs WHERE state = 'queued' AND (not_before IS NULL OR not_before <= %(now)s)
                AND (%(all_types)s OR type = ANY(CAST(%(types)s AS TEXT[])))
                ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
      AND state = 'queued'
    RETURNING *),
e AS (INSERT INTO job_events (job_id, seq, kind, data, created_at)
      SELECT j.id, j.event_seq, 'state', json_build_object('from', 'queued', 'to', 'running',
             'worker_id', CAST(%(worker)s AS TEXT), 'attempt', j.attempts), %(now)s FROM j)
SELECT * FROM j

-- name: heartbeat
-- Liveness of one attempt: job id, running, its claim id and attempt number must all match.
UPDATE jobs SET heartbeat_at = %(now)s
WHERE id = %(id)s AND state = 'running' AND worker_id = %(worker)s AND attempts = %(attempt)s
RETURNING cancel_requested

-- name: finish
-- A running job ends (lock released; with %(worker)s only that claim's attempt may), with its state
-- event; its resources in a state of %(settle)s move on (a site job's site and environment, a node
-- job's node), each move audited.
WITH j AS (
    UPDATE jobs SET state = %(state)s, lock_key = NULL, finished_at = %(now)s, updated_at = %(now)s,
        error_code = %(code)s, error_message = %(msg)s, event_seq = event_seq + 1
    WHERE id = %(id)s AND state = 'running'
      AND (CAST(%(worker)s AS TEXT) IS NULL OR (worker_id = %(worker)s AND attempts = %(attempt)s))
    RETURNING *),
e AS (INSERT INTO job_events (job_id, seq, kind, data, created_at)
      SELECT j.id, j.event_seq, 'state', CAST(%(data)s AS JSON), %(now)s FROM j),
rule AS (SELECT CAST(%(settle)s AS JSONB) AS map),
site_scope AS (SELECT j.* FROM j WHERE j.type <> ALL(CAST(%(node_types)s AS TEXT[]))),
o_sites AS (SELECT x.id, x.name, x.state AS old FROM sites x, site_scope j, rule
            WHERE x.id = j.site_id AND rule.map ? x.state FOR UPDATE OF x),
o_envs AS (SELECT x.id, x.name, x.state AS old FROM environments x, site_scope j, rule
           WHERE x.id = j.env_id AND rule.map ? x.state FOR UPDATE OF x),
o_nodes AS (SELECT x.id, x.name, x.state AS old FROM nodes x, j, rule
            WHERE x.id = j.node_id AND j.type = ANY(CAST(%(node_types)s AS TEXT[])) AND rule.map ? x.state
            FOR UPDATE OF x),
u AS (
    UPDATE sites SET state = rule.map ->> o.old, updated_at = %(now)s FROM o_sites o, rule
    WHERE sites.id = o.id RETURNING 'sites:' || o.name AS target, o.old, sites.state AS new),
u_envs AS (
    UPDATE environments SET state = rule.map ->> o.old, updated_at = %(now)s FROM o_envs o, rule
    WHERE environments.id = o.id RETURNING 'environments:' || o.name AS target, o.old, environments.state AS new),
u_nodes AS (
    UPDATE nodes SET state = rule.map ->> o.old, updated_at = %(now)s FROM o_nodes o, rule
    WHERE nodes.id = o.id RETURNING 'nodes:' || o.name AS target, o.old, nodes.state AS new),
a AS (INSERT INTO audit_log (actor, action, target, result, detail, created_at)
      SELECT NULL, 'transition', m.target, m.new,
             json_build_object('from', m.old, 'to', m.new, 'job_id', j.id, 'job_type', j.type), %(now)s
      FROM (SELECT * FROM u UNION ALL SELECT * FROM u_envs UNION ALL SELECT * FROM u_nodes) m, j)
SELECT * FROM j

-- name: settle_sites
-- One resource of a job that ended outside finish (stall, deadline, cancel) moves on, audited
-- (a table name is no parameter: one statement per table).
WITH o AS (SELECT id, name, state AS old FROM sites
           WHERE id = %(id)s AND CAST(%(settle)s AS JSONB) ? state FOR UPDATE),
u AS (UPDATE sites SET state = CAST(%(settle)s AS JSONB) ->> o.old, updated_at = %(now)s FROM o
      WHERE sites.id = o.id RETURNING 'sites:' || o.name AS target, o.old, sites.state AS new),
a AS (INSERT INTO audit_log (actor, action, target, result, detail, created_at)
      SELECT CAST(%(actor)s AS TEXT), 'transition', u.target, u.new, json_build_object('from', u.old,
             'to', u.new, 'job_id', CAST(%(job_id)s AS INTEGER), 'job_type', CAST(%(job_type)s AS TEXT)), %(now)s
      FROM u)
SELECT target, old, new FROM u

-- name: settle_environments
WITH o AS (SELECT id, name, state AS old FROM environments
           WHERE id = %(id)s AND CAST(%(settle)s AS JSONB) ? state FOR UPDATE),
u AS (UPDATE environments SET state = CAST(%(settle)s AS JSONB) ->> o.old, updated_at = %(now)s FROM o
      WHERE environments.id = o.id RETURNING 'environments:' || o.name AS target, o.old, environments.state AS new),
a AS (INSERT INTO audit_log (actor, action, target, result, detail, created_at)
      SELECT CAST(%(actor)s AS TEXT), 'transition', u.target, u.new, json_build_object('from', u.old,
             'to', u.new, 'job_id', CAST(%(job_id)s AS INTEGER), 'job_type', CAST(%(job_type)s AS TEXT)), %(now)s
      FROM u)
SELECT target, old, new FROM u

-- name: settle_nodes
WITH o AS (SELECT id, name, state AS old FROM nodes
           WHERE id = %(id)s AND CAST(%(settle)s AS JSONB) ? state FOR UPDATE),
u AS (UPDATE nodes SET state = CAST(%(settle)s AS JSONB) ->> o.old, updated_at = %(now)s FROM o
      WHERE nodes.id = o.id RETURNING 'nodes:' || o.name AS target, o.old, nodes.state AS new),
a AS (INSERT INTO audit_log (actor, action, target, result, detail, created_at)
      SELECT CAST(%(actor)s AS TEXT), 'transition', u.target, u.new, json_build_object('from', u.old,
             'to', u.new, 'job_id', CAST(%(job_id)s AS INTEGER), 'job_type', CAST(%(job_type)s AS TEXT)), %(now)s
      FROM u)
SELECT target, old, new FROM u

-- name: add_job_event
-- Every job event outside claim and finish (transitions, the runner): the seq bump and the insert.
WITH j AS (UPDATE jobs SET event_seq = event_seq + 1 WHERE id = %(job_id)s RETURNING id, event_seq)
INSERT INTO job_events (job_id, seq, kind, data, created_at)
SELECT j.id, j.event_seq, %(kind)s, CAST(%(data)s AS JSON), %(now)s FROM j
RETURNING seq

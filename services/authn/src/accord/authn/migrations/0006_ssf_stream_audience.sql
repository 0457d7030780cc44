-- A stream's aud is the receiver that owns it (SSF 1.0 §8.1.1: transmitter-supplied), never
-- what a create request named: a receiver must not get SETs addressed to another receiver,
-- which it could replay to that one. Streams made before are re-addressed to their owner,
-- the SETs waiting on them (signed for the old aud) are not handed out, and the database
-- refuses any other aud from now on.
WITH readdressed AS (
    UPDATE ssf_streams
    SET config = jsonb_set(config, '{aud}', jsonb_build_array(owner)), updated_at = now()
    WHERE config -> 'aud' IS DISTINCT FROM jsonb_build_array(owner)
    RETURNING stream_id
)
UPDATE ssf_set_queue q
SET status = 'failed', last_error = 'the stream was re-addressed to its receiver'
FROM readdressed r
WHERE q.stream_id = r.stream_id AND q.status IN ('pending', 'delivered');

ALTER TABLE ssf_streams
    ADD CONSTRAINT ssf_streams_aud_is_the_owner
    CHECK (config -> 'aud' = jsonb_build_array(owner));

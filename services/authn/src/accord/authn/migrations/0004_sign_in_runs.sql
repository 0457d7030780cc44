-- Failed sign-ins lock an identity by the events' own times, never by the order they are
-- consumed in (issue 17): authn.failed and authn.succeeded are two topics that Kafka does not
-- order, so a success may be consumed before failures that came before it, or after those
-- that came after it. A success therefore no longer deletes the failures before it: it is
-- kept, like them, as long as a failure consumed late could still share a window with it,
-- and it ends the run of the failures at or before its time whenever it arrives.
CREATE TABLE sign_in_successes (
    event_id     text        PRIMARY KEY,
    user_id      text        NOT NULL,
    occurred_at  timestamptz NOT NULL
);
CREATE INDEX sign_in_successes_user ON sign_in_successes (user_id, occurred_at);

-- Where an identity's count starts again for good: the time of its latest lockout or unlock.
-- A failure at or before it never counts, however late it is consumed: a lockout counted
-- the failures before it, an unlock forgave them. One row per identity ever locked.
CREATE TABLE sign_in_settled (
    user_id     text        PRIMARY KEY,
    settled_at  timestamptz NOT NULL
);

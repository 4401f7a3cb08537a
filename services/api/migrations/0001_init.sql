-- The api service's own state: who may log in, the tokens and sessions they hold (hashes
-- only), saved console views and the assistant's query log. Other services' data is read
-- through their v_* views with the reader role, never from here.

CREATE TABLE users (
    name          text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$'),
    role          text NOT NULL CHECK (role IN ('viewer', 'approver', 'admin')),
    password_hash text NOT NULL,            -- argon2id, never the password
    created_at    timestamptz NOT NULL DEFAULT now(),
    disabled_at   timestamptz
);

CREATE TABLE tokens (
    token_id    text PRIMARY KEY,           -- short public id, shown in `token list` / revoke
    token_hash  text NOT NULL UNIQUE,       -- sha256 hex of the secret; the secret is shown once
    role        text NOT NULL CHECK (role IN ('viewer', 'approver', 'admin')),
    name        text,                       -- who or what holds it (free text)
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    revoked_at  timestamptz,
    last_used_at timestamptz
);

CREATE TABLE sessions (
    session_hash text PRIMARY KEY,          -- sha256 hex of the cookie value
    user_name    text NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    csrf_token   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expires_at);

CREATE TABLE saved_views (
    view_id    bigserial PRIMARY KEY,
    owner      text NOT NULL,
    name       text NOT NULL,
    path       text NOT NULL,               -- the console URL with its query (e.g. /costs?...)
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (owner, name)
);

CREATE TABLE assistant_queries (
    query_id    bigserial PRIMARY KEY,
    asked_at    timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    question    text NOT NULL,
    sql         text,
    engine      text,
    row_count   integer,
    error       text,
    duration_ms integer
);

-- decisions the api published, so a client can follow one by its id
CREATE TABLE decisions (
    decision_id text PRIMARY KEY,
    kind        text NOT NULL,              -- remediation, anomaly-feedback, budget, recommendation
    subject     text NOT NULL,              -- command id, anomaly id, budget name, ...
    decision    text NOT NULL,
    actor       text NOT NULL,
    reason      text,
    decided_at  timestamptz NOT NULL DEFAULT now()
);

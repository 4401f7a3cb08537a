-- A token may belong to a user: what it decides is then audited as that user (user:<name>),
-- not as an anonymous token id, and it dies with the user (removed or disabled). Tokens
-- without an owner stay service tokens (CI, dashboards), audited as token:<id>.
ALTER TABLE tokens ADD COLUMN user_name text REFERENCES users (name) ON DELETE CASCADE;

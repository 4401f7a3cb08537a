#!/usr/bin/env bash
# finfocus_reader as a LOGIN role (read-only) for the CLI and Grafana in the compose file
# (mounted into the postgres image's /docker-entrypoint-initdb.d). The services' migrations
# grant it their v_* views. deploy/postgres/init-roles.sh (the secure overlay) does the same
# and more; running both is harmless.
set -euo pipefail
DB=${POSTGRES_DB:-finfocus}
psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname "$DB" \
  -v password="${FINFOCUS_DB_PASSWORD_READER:?set FINFOCUS_DB_PASSWORD_READER}" <<'SQL'
SELECT 'CREATE ROLE finfocus_reader LOGIN'
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'finfocus_reader') \gexec
ALTER ROLE finfocus_reader WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD :'password';
ALTER ROLE finfocus_reader SET default_transaction_read_only = on;
SQL
psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname "$DB" \
  -c "GRANT CONNECT ON DATABASE $DB TO finfocus_reader"

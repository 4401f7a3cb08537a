#!/usr/bin/env bash
# Per-service LOGIN roles for FinFocus on PostgreSQL (mounted into the postgres image's
# /docker-entrypoint-initdb.d, or run once with psql as an admin: PGHOST, PGUSER, ...).
#
# Each service connects as finfocus_<service> and owns only its schema; the CLI and
# dashboards read the v_* views as finfocus_reader (read-only). Passwords come from the
# environment (render them from Vault: deploy/vault/render-env.sh); nothing is trusted
# without a password. Re-running it only resets the passwords.
set -euo pipefail
DB=${POSTGRES_DB:-finfocus}
SERVICES="ingest pricing anomaly forecast remediation api"

sql() { psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname "$DB" "$@"; }

sql -c "REVOKE ALL ON DATABASE $DB FROM PUBLIC" -c "REVOKE CREATE ON SCHEMA public FROM PUBLIC"
for role in reader $SERVICES; do  # the reader first: each schema grants it USAGE
  var="FINFOCUS_DB_PASSWORD_$(echo "$role" | tr '[:lower:]' '[:upper:]')"
  password=${!var:?set $var}
  name="finfocus_$role"
  sql -v name="$name" -v password="$password" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'name')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'name') \gexec
ALTER ROLE :"name" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD :'password';
SQL
  if [ "$role" = reader ]; then
    sql -c "GRANT CONNECT ON DATABASE $DB TO $name" \
        -c "ALTER ROLE $name SET default_transaction_read_only = on"
  else
    # TEMPORARY: the stores' bulk writes COPY into temporary tables
    sql -c "GRANT CONNECT, TEMPORARY ON DATABASE $DB TO $name" \
        -c "CREATE SCHEMA IF NOT EXISTS $role AUTHORIZATION $name" \
        -c "ALTER SCHEMA $role OWNER TO $name" \
        -c "GRANT USAGE ON SCHEMA $role TO finfocus_reader"
  fi
done

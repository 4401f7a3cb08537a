#!/usr/bin/env bash
# Render the per-service credentials kept in Vault (KV v2) into an env file for
# `docker compose --env-file`, readable by its owner only. Nothing is written to the compose
# file or the image. Layout in Vault (one secret per role, field `password`):
#
#   secret/finfocus/db/<ingest|pricing|anomaly|forecast|remediation|api|reader>
#   secret/finfocus/kafka/<ingest|pricing|anomaly|forecast|remediation|api|cli>
#
#   VAULT_ADDR=... VAULT_TOKEN=... deploy/vault/render-env.sh > /dev/null   # writes .env.secure
set -euo pipefail
OUT=${1:-.env.secure}
umask 077
: > "$OUT"
field() { vault kv get -mount=secret -field=password "finfocus/$1"; }
for role in ingest pricing anomaly forecast remediation api reader; do
  echo "FINFOCUS_DB_PASSWORD_$(echo "$role" | tr '[:lower:]' '[:upper:]')=$(field "db/$role")" >> "$OUT"
done
for user in ingest pricing anomaly forecast remediation api cli; do
  echo "FINFOCUS_KAFKA_PASSWORD_$(echo "$user" | tr '[:lower:]' '[:upper:]')=$(field "kafka/$user")" >> "$OUT"
done
echo "wrote $OUT (0600)" >&2

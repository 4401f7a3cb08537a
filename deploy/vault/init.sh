#!/bin/sh
# One-shot Vault initialisation for FinFocus (the compose file's vault-init container; also
# usable against any Vault with an admin token: VAULT_ADDR, VAULT_TOKEN).
#
# 1. KV v2 at secret/ (dev-mode Vault has it already).
# 2. Policy finfocus-read from deploy/vault/finfocus-policy.hcl.
# 3. Every secret path FinFocus reads, under secret/finfocus/ (field `value` unless said),
#    written only when absent so a re-run never rotates anything by surprise:
#      ingest-token                       bearer token of ingest's HTTP intake (random)
#      bus-signing/<issuer>               HMAC key per issuer of signed bus messages (random)
#      db/<role>, kafka/<user> (password) per-role passwords for deploy/compose.secure.yml (random)
#      aws/credentials (access_key_id, secret_access_key)  from FINFOCUS_AWS_* when given
#      remediation-webhook-url, remediation-approval-webhook-url, ops-slack-webhook
#                                         from FINFOCUS_*_WEBHOOK_URL when given
# 4. A token with only finfocus-read (orphan, periodic 768h) into TOKEN_FILE, readable by
#    TOKEN_UID only: the one already there is renewed and kept while valid, unless ROTATE=1
#    (then it is revoked and replaced: restart the services). Services read it through
#    VAULT_TOKEN_FILE (the image's entrypoint). The admin token never leaves this container.
set -eu
POLICY_FILE=${POLICY_FILE:-/deploy/vault/finfocus-policy.hcl}
TOKEN_FILE=${TOKEN_FILE:-/run/finfocus/vault/token}
TOKEN_UID=${TOKEN_UID:-10001}
ISSUERS="ingest pricing anomaly forecast remediation api cli"
DB_ROLES="ingest pricing anomaly forecast remediation api reader"
KAFKA_USERS="ingest pricing anomaly forecast remediation api cli"

for i in $(seq 1 30); do vault status >/dev/null 2>&1 && break; sleep 1; done
vault status >/dev/null

vault secrets list -format=json | grep -q '"secret/"' || vault secrets enable -path=secret kv-v2
vault policy write finfocus-read "$POLICY_FILE"

random() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
exists() { vault kv get -mount=secret "finfocus/$1" >/dev/null 2>&1; }
seed() {  # seed PATH FIELD=VALUE...: only when the path is absent
  path=$1; shift
  if exists "$path"; then echo "kept   secret/finfocus/$path"; return; fi
  vault kv put -mount=secret "finfocus/$path" "$@" >/dev/null
  echo "stored secret/finfocus/$path"
}

seed ingest-token value="$(random)"
for issuer in $ISSUERS; do seed "bus-signing/$issuer" value="$(random)"; done
for role in $DB_ROLES; do seed "db/$role" password="$(random)"; done
for user in $KAFKA_USERS; do seed "kafka/$user" password="$(random)"; done
if [ -n "${FINFOCUS_AWS_ACCESS_KEY_ID:-}" ] && [ -n "${FINFOCUS_AWS_SECRET_ACCESS_KEY:-}" ]; then
  seed aws/credentials access_key_id="$FINFOCUS_AWS_ACCESS_KEY_ID" secret_access_key="$FINFOCUS_AWS_SECRET_ACCESS_KEY"
fi
[ -n "${FINFOCUS_REMEDIATION_WEBHOOK_URL:-}" ] && seed remediation-webhook-url value="$FINFOCUS_REMEDIATION_WEBHOOK_URL"
[ -n "${FINFOCUS_APPROVAL_WEBHOOK_URL:-}" ] && seed remediation-approval-webhook-url value="$FINFOCUS_APPROVAL_WEBHOOK_URL"
[ -n "${FINFOCUS_OPS_WEBHOOK_URL:-}" ] && seed ops-slack-webhook value="$FINFOCUS_OPS_WEBHOOK_URL"

# a token the running services hold is kept (renewed) unless ROTATE=1: `docker compose up`
# runs this container again and must not cut the services off
if [ -s "$TOKEN_FILE" ]; then
  old=$(cat "$TOKEN_FILE")
  if [ "${ROTATE:-0}" != 1 ] && VAULT_TOKEN="$old" vault token renew >/dev/null 2>&1; then
    echo "kept the services' token (renewed); ROTATE=1 issues a new one"
    exit 0
  fi
  vault token revoke "$old" >/dev/null 2>&1 || true
fi
umask 077
vault token create -orphan -no-default-policy -policy=finfocus-read -period=768h \
  -display-name=finfocus-services -field=token > "$TOKEN_FILE.tmp"
chown "$TOKEN_UID" "$TOKEN_FILE.tmp"
chmod 0400 "$TOKEN_FILE.tmp"
mv "$TOKEN_FILE.tmp" "$TOKEN_FILE"
echo "scoped token (policy finfocus-read) written to $TOKEN_FILE"

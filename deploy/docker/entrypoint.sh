#!/bin/sh
# The image's entrypoint: `finfocus "$@"`, with VAULT_TOKEN read from VAULT_TOKEN_FILE when it
# is set (the compose file's scoped token, a Kubernetes secret volume), so no token has to sit
# in the container's declared environment.
set -e
if [ -z "${VAULT_TOKEN:-}" ] && [ -n "${VAULT_TOKEN_FILE:-}" ]; then
  if [ ! -r "$VAULT_TOKEN_FILE" ]; then
    echo "VAULT_TOKEN_FILE=$VAULT_TOKEN_FILE is not readable" >&2
    exit 1
  fi
  VAULT_TOKEN=$(cat "$VAULT_TOKEN_FILE")
  export VAULT_TOKEN
fi
exec finfocus "$@"

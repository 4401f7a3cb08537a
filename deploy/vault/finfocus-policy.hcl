# finfocus-read: what a FinFocus service or the CLI may do in Vault (KV v2 mounted at secret/).
# Read the secrets under secret/finfocus/ (bus-signing keys, the intake token, webhooks, cloud
# credentials, database and Kafka passwords); nothing else: no writes, no listing elsewhere,
# no token creation. deploy/vault/init.sh writes this policy and issues the services' token.
path "secret/data/finfocus/*" {
  capabilities = ["read"]
}

path "secret/metadata/finfocus/*" {
  capabilities = ["read", "list"]
}

# let a service look up and renew its own token (periodic tokens must be renewed)
path "auth/token/lookup-self" {
  capabilities = ["read"]
}

path "auth/token/renew-self" {
  capabilities = ["update"]
}

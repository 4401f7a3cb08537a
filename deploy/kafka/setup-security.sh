#!/usr/bin/env bash
# SCRAM users and per-service ACLs for FinFocus on a Kafka cluster with SASL_SSL listeners
# and the StandardAuthorizer (KRaft). Run with an admin client configuration:
#
#   KAFKA_BIN=/opt/kafka/bin BOOTSTRAP=kafka:9094 ADMIN_CONFIG=/etc/kafka/admin.properties \
#     FINFOCUS_KAFKA_PASSWORD_INGEST=... (one per user below) deploy/kafka/setup-security.sh
#
# Passwords come from the environment (render them from Vault: deploy/vault/render-env.sh).
# Each service may read only the topics it consumes, write only the topics it produces (and
# the dead-letter topics of what it consumes), and use only consumer groups named
# finfocus-<service>*. Nobody but ingest may write raw-billing (upstream producers that must
# publish there get their own user and are refused scope fields by pricing), and only
# remediation writes remediation-commands.
set -euo pipefail
KAFKA_BIN=${KAFKA_BIN:-/opt/kafka/bin}
BOOTSTRAP=${BOOTSTRAP:?the admin listener, e.g. kafka:9094}
ADMIN_CONFIG=${ADMIN_CONFIG:?an admin client .properties file}
PARTITIONS=${FINFOCUS_PARTITIONS:-4}
REPLICATION=${REPLICATION:-3}

TOPICS="raw-billing priced-resources anomalies remediation-commands remediation-results
recommendations forecasts resource-metrics anomaly-feedback budget-commands
remediation-decisions recommendation-decisions
raw-billing.dlq priced-resources.dlq anomalies.dlq remediation-commands.dlq"

# user | topics it reads | topics it writes
ACLS="
ingest      | | raw-billing
pricing     | raw-billing | priced-resources raw-billing.dlq
anomaly     | priced-resources anomaly-feedback | anomalies priced-resources.dlq
forecast    | priced-resources budget-commands | anomalies forecasts priced-resources.dlq
remediation | anomalies priced-resources resource-metrics remediation-commands remediation-decisions recommendation-decisions | remediation-commands remediation-results recommendations anomalies.dlq remediation-commands.dlq
cli         | | anomaly-feedback budget-commands
api         | | anomaly-feedback budget-commands remediation-decisions recommendation-decisions
"

admin() { "$KAFKA_BIN/$1" --bootstrap-server "$BOOTSTRAP" --command-config "$ADMIN_CONFIG" "${@:2}"; }

# topics first: services then never need the right to create them
for topic in $TOPICS; do
  admin kafka-topics.sh --create --if-not-exists --topic "$topic" \
    --partitions "$PARTITIONS" --replication-factor "$REPLICATION"
done

echo "$ACLS" | while IFS='|' read -r user reads writes; do
  user=$(echo "$user" | xargs)
  [ -z "$user" ] && continue
  var="FINFOCUS_KAFKA_PASSWORD_$(echo "$user" | tr '[:lower:]-' '[:upper:]_')"
  password=${!var:?set $var}
  principal="User:finfocus-$user"
  admin kafka-configs.sh --alter --entity-type users --entity-name "finfocus-$user" \
    --add-config "SCRAM-SHA-512=[password=$password]"
  for topic in $TOPICS; do  # list_topics sees every FinFocus topic (so nobody tries to create one)
    admin kafka-acls.sh --add --allow-principal "$principal" --operation Describe --topic "$topic"
  done
  for topic in $reads; do
    admin kafka-acls.sh --add --allow-principal "$principal" --operation Read --topic "$topic"
  done
  for topic in $writes; do
    admin kafka-acls.sh --add --allow-principal "$principal" --operation Write --topic "$topic"
  done
  if [ -n "$(echo "$reads" | xargs)" ]; then
    admin kafka-acls.sh --add --allow-principal "$principal" --operation Read \
      --group "finfocus-$user" --resource-pattern-type prefixed
  fi
done

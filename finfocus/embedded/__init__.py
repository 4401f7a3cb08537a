"""The embedded default: a real Kafka-protocol broker (Tansu) and a real PostgreSQL, no Docker."""

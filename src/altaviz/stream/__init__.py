"""Real-time path: Kafka-protocol ingest, event-time windows, online anomaly detection."""

"""Domain events on JetStream and Standard Webhooks deliveries: signed, retried, persisted."""

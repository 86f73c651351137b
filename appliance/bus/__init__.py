"""The message bus: embedded nats-server supervisor, client, streams and subjects."""

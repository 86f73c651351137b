"""Metrics, health and readiness, logging, system state."""

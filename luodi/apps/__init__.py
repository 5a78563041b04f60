"""Business applications built on the gateway (risk scoring, support)."""

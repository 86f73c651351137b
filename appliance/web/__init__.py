"""HTTP conventions shared by every feature: envelope, pagination, policies, middlewares."""

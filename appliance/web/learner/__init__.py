"""Learner-facing pages of the knowledge library (plain HTML and local scripts, no CDN)."""

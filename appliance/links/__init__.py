"""Helpful links: a list staff curate for learners (title, description, URL, a locally served icon)."""

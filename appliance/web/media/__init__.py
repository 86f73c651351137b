"""Pages and static assets of the video cache (admin video page, learner player)."""

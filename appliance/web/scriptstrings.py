"""Every sentence the pages' JavaScript shows, in the Babel catalogue: pages render them, translated, as a JSON
block (`#ui-strings`) the scripts read, so no script carries English of its own."""

from __future__ import annotations

from appliance.web.i18n import N_, gettext

# key → message; `{name}` placeholders are filled in by the script.
STRINGS = {
    # reader
    "search_for": N_("Search for “{query}”"),
    "suggestions_none": N_("No title matches; press Enter to search the text."),
    # helpful links
    "icon_refused": N_("The icon was refused."),
    # media (player and staff video page)
    "resuming_at": N_("Resuming at {time}"),
    "no_answer": N_("The appliance did not answer; try again."),
    "new_title": N_("New title"),
    "uploaded_video": N_("Uploaded video"),
    "title_unknown": N_("Title not known yet"),
    "hidden_from_learners": N_("Hidden from learners"),
    "play": N_("Play"),
    "videos_not_loaded": N_("Could not load the videos."),
    "live_updates": N_("Live updates: {state}"),
}


def translated() -> dict[str, str]:
    """The script strings in the active language (called while a page renders)."""
    return {key: gettext(message) for key, message in STRINGS.items()}

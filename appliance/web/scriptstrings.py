"""Every sentence the pages' JavaScript shows, in the Babel catalogue: pages render them, translated, as a JSON
block (`#ui-strings`) the scripts read, so no script carries English of its own."""

from __future__ import annotations

from appliance.web.i18n import N_, gettext
from appliance.web.messages import SENTENCES

# key → message; `{name}` placeholders are filled in by the script.
STRINGS = {
    # reader
    "search_for": N_("Search for “{query}”"),
    # helpful links
    "icon_refused": N_("The icon was refused."),
    # media: the player
    "resuming_at": N_("Resuming at {time}"),
    # media: the staff video page
    "no_answer": N_("The appliance did not answer; try again."),
    "new_title": N_("New title"),
    "save": N_("Save"),
    "saved": N_("Saved."),
    "uploaded_video": N_("Uploaded video"),
    "title_unknown": N_("Title not known yet"),
    "next_attempt": N_("(next attempt {time})"),
    "eta": N_("ETA {time}"),
    "min_s": N_("{min} min {s} s"),
    "s": N_("{s} s"),
    "hidden_from_learners": N_("Hidden from learners"),
    "other_facility": N_("and {num} other facility"),
    "other_facilities": N_("and {num} other facilities"),
    "retry": N_("Retry"),
    "rename": N_("Rename"),
    "delete": N_("Delete"),
    "confirm_delete": N_("Delete “{title}” and its files?"),
    "this_video": N_("this video"),
    "deleted": N_("Deleted."),
    "play": N_("Play"),
    "videos_not_loaded": N_("Could not load the videos."),
    "queued_videos": N_("Queued {num} video(s)."),
    "already_known": N_("{num} already known."),
    "uploading": N_("Uploading…"),
    "uploaded": N_("Uploaded: {title}"),
    "live_updates": N_("Live updates: {state}"),
    "live_on": N_("on"),
    "live_off": N_("off, trying again shortly…"),
    "live_reconnecting": N_("reconnecting…"),
    "state_pending": N_("pending"),
    "state_processing": N_("processing"),
    "state_available": N_("available"),
    "state_error": N_("error"),
}


def translated(errors: bool = False) -> dict[str, str]:
    """The script strings in the active language (called while a page renders); with `errors`, also the API's
    error codes as sentences (`error:<code>`), for pages whose scripts show a person an API error."""
    out = {key: gettext(message) for key, message in STRINGS.items()}
    if errors:
        out.update({f"error:{code}": gettext(message) for code, message in SENTENCES.items()})
    return out

"""The video cache feature's declaration: yt-dlp downloads to disk or S3, streamed with seeking."""

from appliance.core.feature import Feature
from appliance.media.settings import MediaSettings

FEATURE = Feature(
    name="media",
    order=30,
    sections={"media": MediaSettings},
    setup="appliance.media.feature:setup",
    cli="appliance.media.cli:register",
    description="video cache: downloads, uploads, storage on disk or S3, streaming and watch time",
)

"""Prometheus metrics of the video cache."""

from prometheus_client import Counter, Gauge, Histogram

DOWNLOADS = Counter("appliance_media_downloads_total", "Finished download attempts by outcome", ["outcome"])
DOWNLOAD_SECONDS = Histogram(
    "appliance_media_download_duration_seconds", "Wall time of successful downloads",
    buckets=(1, 5, 15, 60, 300, 900, 1800, 3600, 7200),
)
DOWNLOADS_ACTIVE = Gauge("appliance_media_downloads_active", "yt-dlp runs in progress", multiprocess_mode="livesum")
STREAM_BYTES = Counter("appliance_media_stream_bytes_total", "Video bytes served, by backend", ["backend"])
UPLOADS = Counter("appliance_media_uploads_total", "Uploads by outcome", ["outcome"])
SWEPT = Counter("appliance_media_swept_objects_total", "Orphaned files removed by the sweeper")
CACHE_BYTES = Gauge("appliance_media_cache_bytes", "Bytes of available videos", multiprocess_mode="max")
EGRESS_REFUSED = Counter("appliance_media_egress_refused_total",
                         "Requests of yt-dlp the egress proxy refused, by reason", ["reason"])

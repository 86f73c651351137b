"""Configuration section [media]: the video cache."""

from dataclasses import dataclass
from pathlib import Path

from appliance.core.settings import setting

DEFAULT_FORMAT = "bv*[height<=720][ext=mp4]+ba[ext=m4a]/b[height<=720][ext=mp4]/bv*[height<=720]+ba/b[height<=720]/b"


@dataclass(frozen=True)
class MediaSettings:
    """[media]: downloads, storage backend, uploads."""

    backend: str = setting("disk", help="where videos are stored: disk (content_root/videos) or s3",
                           choices=("disk", "s3"))
    s3_endpoint: str = setting("", help="S3 endpoint host:port (MinIO, SeaweedFS, AWS)")
    s3_bucket: str = setting("appliance-videos", help="S3 bucket for videos (created if missing)")
    s3_access_key: str = setting("", help="S3 access key", secret=True)
    s3_secret_key: str = setting("", help="S3 secret key", secret=True)
    s3_secure: bool = setting(True, help="use HTTPS to reach the S3 endpoint")
    s3_region: str = setting("", help="S3 region (empty: the server's default)")
    s3_part_size_mb: int = setting(16, help="multipart upload part size in MiB", min=5, max=5120)
    s3_sse: str = setting("auto", help="server-side encryption: auto (use SSE-S3 if the server accepts it), s3, off",
                          choices=("auto", "s3", "off"))
    s3_timeout_s: float = setting(10.0, help="connect/read timeout for S3 calls in seconds", min=0.5, max=600)
    stream_mode: str = setting("proxy", help="S3 playback: proxy (ranged reads through the appliance) or redirect "
                               "(307 to a presigned URL)", choices=("proxy", "redirect"))
    presign_expiry_s: int = setting(600, help="lifetime of presigned S3 URLs in seconds", min=10, max=604800)
    max_concurrent_downloads: int = setting(2, help="yt-dlp downloads running at once", min=1, max=16)
    download_timeout_s: int = setting(3600, help="a yt-dlp run is killed after this many seconds", min=5)
    socket_timeout_s: int = setting(30, help="yt-dlp network timeout in seconds", min=1, max=600)
    format: str = setting(DEFAULT_FORMAT, help="yt-dlp format selector (default: best mp4 at or under 720p)")
    cookies_file: Path = setting(Path(""), help="Netscape cookies file passed to yt-dlp (empty: none)")
    max_filesize_mb: int = setting(0, help="yt-dlp skips files larger than this (0: no limit)", min=0)
    max_attempts: int = setting(5, help="download attempts before a video is marked error", min=1, max=50)
    retry_delay_s: int = setting(600, help="wait before retry n is n times this many seconds", min=1)
    uplink_wait_s: int = setting(60, help="while a source is unreachable, jobs re-check after this many seconds",
                                 min=1)
    job_ack_wait_s: int = setting(120, help="a claimed job is redelivered if its worker is silent this long",
                                  min=2)
    allowed_networks: list[str] = setting([], help="older alias: CIDRs added to egress.allowed_networks for "
                                          "video downloads only (prefer egress.allowed_networks)")
    min_free_disk_mb: int = setting(1024, help="refuse new downloads/uploads below this much free disk", min=0)
    cache_quota_mb: int = setting(0, help="largest total size of cached videos in MiB (0: no quota)", min=0)
    upload_max_mb: int = setting(4096, help="largest accepted upload in MiB (413 beyond)", min=1)
    sweep_interval_s: int = setting(3600, help="how often the orphan sweeper runs", min=10)
    sweep_grace_s: int = setting(3600, help="stored files younger than this are never swept", min=0)

"""Prometheus metrics of the knowledge library (bounded labels only)."""

from prometheus_client import Counter, Gauge, Histogram

CLUSTER_CACHE_MAX = Gauge("appliance_content_cluster_cache_max_bytes",
                          "Configured libzim cluster cache per process", multiprocess_mode="max")
CLUSTER_CACHE_USED = Gauge("appliance_content_cluster_cache_bytes",
                           "libzim cluster cache in use, summed over live processes", multiprocess_mode="livesum")
GZIP_CACHE_USED = Gauge("appliance_content_gzip_cache_bytes", "Compressed bodies cached, summed over processes",
                        multiprocess_mode="livesum")
HOT_CACHE_USED = Gauge("appliance_content_hot_cache_bytes",
                       "Hot entries (bodies, gzip bodies, headers) cached, summed over live processes",
                       multiprocess_mode="livesum")
LIBRARIES = Gauge("appliance_content_libraries", "Libraries by state", ["state"], multiprocess_mode="max")
ENTRIES_SERVED = Counter("appliance_content_entries_served_total", "Entries served by outcome", ["outcome"])
QUERY_REJECTED = Counter("appliance_content_query_rejected_total",
                         "Searches and suggestions refused with 503 because their pool was full", ["kind"])
QUERY_LATENCY = Histogram("appliance_content_query_duration_seconds", "Search and suggest latency", ["kind"],
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
VIEWS_WRITTEN = Counter("appliance_content_views_written_total", "Article views written to the database")
VIEWS_DROPPED = Counter("appliance_content_views_dropped_total",
                        "Article views dropped because the buffer was full while the database was failing")
CONNECTIONS_MOVED = Counter("appliance_content_connections_moved_total",
                            "Content-origin connections the primary handed to an HTTP worker while busy")
IMPORT_BYTES = Counter("appliance_content_import_bytes_total", "Bytes downloaded by library imports")


class Tally:
    """A count kept in a plain int on the hot path and added to its counter now and then (publish)."""

    def __init__(self, counter: Counter) -> None:
        self.counter = counter
        self.count = 0

    def publish(self) -> None:
        """Add what was counted since the last call to the Prometheus counter."""
        n, self.count = self.count, 0
        if n:
            self.counter.inc(n)


# Entries answered 200: counted per request in memory, published with the gauges (every few seconds).
SERVED_OK = Tally(ENTRIES_SERVED.labels("ok"))

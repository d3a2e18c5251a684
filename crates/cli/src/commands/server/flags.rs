//! The flag map of `/api/v1/status/flags`.

use std::collections::BTreeMap;

use strata_config::format_duration_ms;

use super::Config;

impl Config {
    /// Every Prometheus 3.5 flag with its value, as `/api/v1/status/flags` shows
    /// them; flags Strata does not implement report Prometheus' defaults.
    pub(super) fn flags_map(&self, log_level: &str) -> BTreeMap<String, String> {
        let d = format_duration_ms;
        let mut m: BTreeMap<String, String> = [
            ("agent", "false"),
            ("alertmanager.drain-notification-queue-on-shutdown", "true"),
            ("alertmanager.notification-batch-size", "256"),
            ("alertmanager.notification-queue-capacity", "10000"),
            ("auto-gomaxprocs", "true"),
            ("auto-gomemlimit", "true"),
            ("auto-gomemlimit.ratio", "0.9"),
            ("config.auto-reload-interval", "30s"),
            ("enable-feature", ""),
            ("log.format", "logfmt"),
            ("rules.alert.for-grace-period", "10m"),
            ("rules.alert.for-outage-tolerance", "1h"),
            ("rules.alert.resend-delay", "1m"),
            ("rules.max-concurrent-evals", "4"),
            ("scrape.adjust-timestamps", "true"),
            ("scrape.discovery-reload-interval", "5s"),
            ("scrape.timestamp-tolerance", "2ms"),
            ("storage.agent.no-lockfile", "false"),
            ("storage.agent.path", "data-agent/"),
            ("storage.agent.retention.max-time", "0s"),
            ("storage.agent.retention.min-time", "0s"),
            ("storage.agent.wal-compression", "true"),
            ("storage.agent.wal-compression-type", "snappy"),
            ("storage.agent.wal-segment-size", "0B"),
            ("storage.agent.wal-truncate-frequency", "0s"),
            ("storage.remote.flush-deadline", "1m"),
            ("storage.remote.read-concurrent-limit", "10"),
            ("storage.remote.read-max-bytes-in-frame", "1048576"),
            ("storage.remote.read-sample-limit", "50000000"),
            ("storage.tsdb.allow-overlapping-compaction", "true"),
            ("storage.tsdb.delayed-compaction.max-percent", "10"),
            ("storage.tsdb.head-chunks-write-queue-size", "0"),
            ("storage.tsdb.max-block-chunk-segment-size", "0B"),
            ("storage.tsdb.no-lockfile", "false"),
            ("storage.tsdb.retention.size", "0B"),
            ("storage.tsdb.samples-per-chunk", "120"),
            ("storage.tsdb.wal-compression", "true"),
            ("storage.tsdb.wal-compression-type", "snappy"),
            ("storage.tsdb.wal-segment-size", "0B"),
            ("web.config.file", ""),
            ("web.console.libraries", "console_libraries"),
            ("web.console.templates", "consoles"),
            ("web.cors.origin", ".*"),
            ("web.enable-admin-api", "false"),
            ("web.enable-otlp-receiver", "false"),
            ("web.enable-remote-write-receiver", "false"),
            ("web.external-url", ""),
            ("web.max-connections", "512"),
            ("web.max-notifications-subscribers", "16"),
            (
                "web.page-title",
                "Prometheus Time Series Collection and Processing Server",
            ),
            ("web.read-timeout", "5m"),
            (
                "web.remote-write-receiver.accepted-protobuf-messages",
                "prometheus.WriteRequest,io.prometheus.write.v2.Request",
            ),
            ("web.route-prefix", "/"),
            ("web.user-assets", ""),
            ("write-documentation", "false"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let ours = [
            ("config.file", self.config_file.display().to_string()),
            ("storage.tsdb.path", self.tsdb_path.display().to_string()),
            ("web.listen-address", self.listen_address.clone()),
            ("storage.tsdb.retention.time", d(self.retention_ms())),
            (
                "storage.tsdb.min-block-duration",
                d(self.min_block_duration),
            ),
            (
                "storage.tsdb.max-block-duration",
                d(self.max_block_duration_ms()),
            ),
            ("query.lookback-delta", d(self.lookback_delta)),
            ("query.max-samples", self.max_samples.to_string()),
            ("query.timeout", d(self.query_timeout)),
            ("query.max-concurrency", self.max_concurrency.to_string()),
            ("web.enable-lifecycle", self.enable_lifecycle.to_string()),
            (
                "web.enable-remote-write-receiver",
                self.enable_remote_write_receiver.to_string(),
            ),
            (
                "storage.remote.read-sample-limit",
                self.remote_read_sample_limit.to_string(),
            ),
            (
                "storage.remote.read-concurrent-limit",
                self.remote_read_concurrent_limit.to_string(),
            ),
            (
                "storage.remote.read-max-bytes-in-frame",
                self.remote_read_max_bytes_in_frame.to_string(),
            ),
            ("log.level", log_level.to_owned()),
            (
                "storage.tsdb.retention.size",
                crate::gofmt::base2_bytes(self.retention_size.unwrap_or(0)),
            ),
        ];
        for (k, v) in ours {
            m.insert(k.to_owned(), v);
        }
        m
    }
}

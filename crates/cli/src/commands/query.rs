//! `strata query`: the querier (mirrors `thanos query`, flag names and defaults
//! included). Discovers StoreAPI endpoints, fans out with pruning, partial
//! response and replica dedup, evaluates PromQL, and serves the Prometheus HTTP
//! API with Thanos' extras and the StoreAPI itself (queriers stack).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use clap::{ArgAction, Args};
use prometheus_client::registry::Registry;
use strata_api::{Api, HttpMetrics, ServerInfo};
use strata_config::parse_duration_ms;
use strata_promql::{Engine, EngineOptions};
use strata_query::{
    EndpointSet, EndpointSetOptions, EndpointSpec, Querier, QuerierOptions, SdConfig,
    SystemResolver,
};
use strata_storage::Queryable;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

fn duration_arg(s: &str) -> Result<Duration, String> {
    let ms = parse_duration_ms(s).map_err(|e| e.to_string())?;
    Ok(Duration::from_millis(ms.max(0).unsigned_abs()))
}

/// `strata query` flags (Thanos' names and defaults).
#[derive(Debug, Args)]
pub struct Config {
    /// Listen host:port for the HTTP API, `/metrics` and the probes.
    #[arg(long = "http-address", default_value = "0.0.0.0:10902")]
    http_address: String,
    /// Time to wait after an interrupt for in-flight HTTP requests.
    #[arg(long = "http-grace-period", value_parser = duration_arg, default_value = "2m")]
    http_grace_period: Duration,
    /// Listen ip:port for the gRPC StoreAPI served over the endpoints.
    #[arg(long = "grpc-address", default_value = "0.0.0.0:10901")]
    grpc_address: String,
    /// Time to wait after an interrupt for in-flight gRPC requests.
    #[arg(long = "grpc-grace-period", value_parser = duration_arg, default_value = "2m")]
    grpc_grace_period: Duration,
    /// A StoreAPI endpoint: `host:port`, `dns+host:port`, `dnssrv+_grpc._tcp.name`
    /// (repeatable).
    #[arg(long = "endpoint")]
    endpoints: Vec<String>,
    /// Like `--endpoint`, but kept in the fan-out even while unhealthy.
    #[arg(long = "endpoint-strict")]
    endpoints_strict: Vec<String>,
    /// Removed from Thanos in v0.38; still accepted as `--endpoint`.
    #[arg(long = "store", hide = true)]
    stores: Vec<String>,
    /// Endpoint SD config file (`endpoints: [{address, strict}]`).
    #[arg(
        long = "endpoint.sd-config-file",
        conflicts_with = "endpoint_sd_config"
    )]
    endpoint_sd_config_file: Option<PathBuf>,
    /// Alternative to `--endpoint.sd-config-file`: the YAML itself.
    #[arg(long = "endpoint.sd-config")]
    endpoint_sd_config: Option<String>,
    /// Prometheus file SD files (globs) listing endpoints, re-read periodically.
    #[arg(long = "store.sd-files")]
    sd_files: Vec<String>,
    /// How often `--store.sd-files` are re-read.
    #[arg(long = "store.sd-interval", value_parser = duration_arg, default_value = "5m")]
    sd_interval: Duration,
    /// How often DNS names are resolved again.
    #[arg(long = "store.sd-dns-interval", value_parser = duration_arg, default_value = "30s")]
    dns_interval: Duration,
    /// An endpoint failing its checks this long is dropped from the fan-out.
    #[arg(long = "store.unhealthy-timeout", value_parser = duration_arg, default_value = "5m")]
    unhealthy_timeout: Duration,
    /// A store silent this long gives a partial response (0: the query timeout).
    #[arg(long = "store.response-timeout", value_parser = duration_arg, default_value = "0ms")]
    response_timeout: Duration,
    /// Deadline of each Info call.
    #[arg(long = "endpoint.info-timeout", value_parser = duration_arg, default_value = "5s", hide = true)]
    info_timeout: Duration,
    /// How often endpoints are asked for their Info (Thanos: 5s).
    #[arg(long = "endpoint.refresh-interval", value_parser = duration_arg, default_value = "5s", hide = true)]
    refresh_interval: Duration,
    /// Labels that differ between replicas (repeatable or comma-separated).
    #[arg(long = "query.replica-label", value_delimiter = ',')]
    replica_labels: Vec<String>,
    /// Maximum time to process a query.
    #[arg(long = "query.timeout", value_parser = duration_arg, default_value = "2m")]
    query_timeout: Duration,
    /// Maximum number of queries processed concurrently.
    #[arg(long = "query.max-concurrent", default_value_t = 20)]
    max_concurrent: usize,
    /// Partial response: a failed store gives warnings rather than an error
    /// (`--query.partial-response`, or `=true`/`=false` as kingpin allows).
    #[arg(long = "query.partial-response", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new(),
          overrides_with = "no_partial_response")]
    partial_response: Option<bool>,
    /// Turns partial response off by default.
    #[arg(long = "no-query.partial-response", action = ArgAction::SetTrue)]
    no_partial_response: bool,
    /// Step of subqueries written without one.
    #[arg(long = "query.default-evaluation-interval", value_parser = duration_arg, default_value = "1m")]
    default_evaluation_interval: Duration,
    /// `max_source_resolution` defaults to step/5.
    #[arg(long = "query.auto-downsampling", action = ArgAction::SetTrue)]
    auto_downsampling: bool,
    /// How far back to look for a sample (default 5m).
    #[arg(long = "query.lookback-delta", value_parser = duration_arg)]
    lookback_delta: Option<Duration>,
    /// Widen the lookback delta for downsampled data: to 5m or 1h as the
    /// request's `max_source_resolution` allows them (Thanos' hidden flag).
    #[arg(long = "query.dynamic-lookback-delta", hide = true, num_args = 0..=1,
          require_equals = true, default_missing_value = "true",
          value_parser = clap::builder::BoolishValueParser::new(),
          overrides_with = "no_dynamic_lookback_delta")]
    dynamic_lookback_delta: Option<bool>,
    /// Turns `--query.dynamic-lookback-delta` off.
    #[arg(long = "no-query.dynamic-lookback-delta", hide = true, action = ArgAction::SetTrue)]
    no_dynamic_lookback_delta: bool,
    /// Maximum samples one query may load.
    #[arg(long = "query.max-samples", default_value_t = 50_000_000, hide = true)]
    max_samples: usize,
    /// Path prefix of every HTTP route (e.g. `/thanos`).
    #[arg(long = "web.route-prefix", default_value = "")]
    route_prefix: String,
    /// URL prefix under which the querier is reached (informational).
    #[arg(long = "web.external-prefix", default_value = "")]
    external_prefix: String,
}

impl Config {
    fn endpoint_options(&self) -> anyhow::Result<EndpointSetOptions> {
        let mut specs = BTreeSet::new();
        let mut strict = BTreeSet::new();
        for a in self.endpoints.iter().chain(&self.stores) {
            specs.insert(EndpointSpec::parse(a).context("--endpoint")?);
        }
        if !self.stores.is_empty() {
            warn!("--store was removed from Thanos in v0.38; treating it as --endpoint");
        }
        for a in &self.endpoints_strict {
            let s = EndpointSpec::parse(a).context("--endpoint-strict")?;
            strict.insert(s.clone());
            specs.insert(s);
        }
        let sd = match (&self.endpoint_sd_config_file, &self.endpoint_sd_config) {
            (Some(p), _) => {
                let origin = p.display().to_string();
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading --endpoint.sd-config-file {origin}"))?;
                Some((SdConfig::parse(&text, &origin)?, origin))
            }
            (None, Some(y)) => Some((
                SdConfig::parse(y, "--endpoint.sd-config")?,
                "--endpoint.sd-config".to_string(),
            )),
            (None, None) => None,
        };
        if let Some((sd, origin)) = sd {
            for (e, s) in sd.endpoints.iter().zip(sd.specs(&origin)?) {
                if e.strict {
                    strict.insert(s.clone());
                }
                specs.insert(s);
            }
        }
        if specs.is_empty() && self.sd_files.is_empty() {
            warn!("no endpoints configured (--endpoint, --endpoint.sd-config, --store.sd-files); queries will return no data");
        }
        Ok(EndpointSetOptions {
            specs: specs.into_iter().collect(),
            strict,
            sd_files: self.sd_files.clone(),
            sd_interval: self.sd_interval,
            dns_interval: self.dns_interval,
            refresh_interval: self.refresh_interval,
            info_timeout: self.info_timeout,
            unhealthy_timeout: self.unhealthy_timeout,
            ..EndpointSetOptions::default()
        })
    }

    fn flags(&self) -> BTreeMap<String, String> {
        let mut f = BTreeMap::new();
        f.insert("http-address".into(), self.http_address.clone());
        f.insert("grpc-address".into(), self.grpc_address.clone());
        f.insert("endpoint".into(), self.endpoints.join(","));
        f.insert("query.replica-label".into(), self.replica_labels.join(","));
        f.insert(
            "query.partial-response".into(),
            self.partial_response_default().to_string(),
        );
        f.insert(
            "query.dynamic-lookback-delta".into(),
            self.dynamic_lookback_delta().to_string(),
        );
        f.insert("web.external-prefix".into(), self.external_prefix.clone());
        f.insert("web.route-prefix".into(), self.route_prefix.clone());
        f
    }

    fn partial_response_default(&self) -> bool {
        self.partial_response.unwrap_or(!self.no_partial_response)
    }

    fn dynamic_lookback_delta(&self) -> bool {
        self.dynamic_lookback_delta
            .unwrap_or(!self.no_dynamic_lookback_delta)
    }

    /// `--query.lookback-delta`, ms (0 when unset).
    fn lookback_delta_ms(&self) -> i64 {
        self.lookback_delta
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }
}

/// Runs the querier until SIGTERM or SIGINT.
pub async fn run(c: Config) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let signals = tokio::spawn(wait_for_signal(shutdown.clone()));
    let set = EndpointSet::new(c.endpoint_options()?, Arc::new(SystemResolver::default()));
    let endpoint_timeout = if c.response_timeout.is_zero() {
        c.query_timeout
    } else {
        c.response_timeout
    };
    let querier = Arc::new(Querier::new(
        set.clone(),
        QuerierOptions {
            replica_labels: c.replica_labels.clone(),
            partial_response: c.partial_response_default(),
            auto_downsampling: c.auto_downsampling,
            endpoint_timeout: Some(endpoint_timeout),
            lookback_delta_ms: c.lookback_delta_ms(),
            dynamic_lookback_delta: c.dynamic_lookback_delta(),
        },
    ));

    let mut registry = Registry::default();
    let http_metrics = HttpMetrics::new(&mut registry);
    let engine = Arc::new(Engine::new(EngineOptions {
        lookback_delta_ms: match c.lookback_delta_ms() {
            0 => 5 * 60 * 1000,
            ms => ms,
        },
        max_samples: c.max_samples,
        timeout: c.query_timeout,
        max_concurrency: c.max_concurrent.max(1),
        default_subquery_step_ms: i64::try_from(c.default_evaluation_interval.as_millis())
            .unwrap_or(60_000),
    }));
    let info = ServerInfo {
        flags: c.flags(),
        start_time: SystemTime::now(),
        ..ServerInfo::default()
    };
    let api = Api::new(querier.default_source(), engine, info)
        .with_metrics(Arc::new(registry), http_metrics)
        .with_source_selector(querier.clone());
    api.set_ready(false);
    let api = Arc::new(api);
    let mut router = api.clone().router();
    let prefix = c.route_prefix.trim_end_matches('/');
    if !prefix.is_empty() {
        let prefix = if prefix.starts_with('/') {
            prefix.to_string()
        } else {
            format!("/{prefix}")
        };
        router = axum::Router::new().nest(&prefix, router);
    }

    let http_listener = tokio::net::TcpListener::bind(&c.http_address)
        .await
        .with_context(|| format!("listening on --http-address {}", c.http_address))?;
    info!(address = %local(&http_listener), "listening for HTTP");
    let graceful = shutdown.clone();
    let mut http = tokio::spawn(async move {
        axum::serve(http_listener, router)
            .with_graceful_shutdown(async move { graceful.cancelled().await })
            .await
    });

    let grpc_listener = tokio::net::TcpListener::bind(&c.grpc_address)
        .await
        .with_context(|| format!("listening on --grpc-address {}", c.grpc_address))?;
    info!(address = %local(&grpc_listener), "listening for StoreAPI gRPC");
    let source: Arc<dyn Queryable> = Arc::new(querier.raw_proxy());
    let stop = shutdown.clone();
    let grpc_shutdown = shutdown.clone();
    let mut grpc = tokio::spawn(async move {
        let opts = strata_storeapi::ServerOptions::new(strata_storeapi::ComponentType::Query);
        if let Err(e) = strata_storeapi::serve(grpc_listener, source, opts, async move {
            stop.cancelled().await
        })
        .await
        {
            tracing::error!(error = %e, "StoreAPI gRPC server failed");
            grpc_shutdown.cancel();
        }
    });

    // First discovery and Info round before answering queries.
    tokio::select! {
        () = set.refresh() => {}
        () = shutdown.cancelled() => {}
    }
    let refresher = tokio::spawn(set.clone().run(shutdown.clone()));
    api.set_ready(true);
    info!(
        endpoints = set.statuses().len(),
        healthy = set.statuses().iter().filter(|e| e.healthy()).count(),
        "querier is ready"
    );

    let finished = tokio::select! {
        r = &mut http => Some(r),
        () = shutdown.cancelled() => None,
    };
    shutdown.cancel();
    let served = match finished {
        Some(r) => r,
        None => match tokio::time::timeout(c.http_grace_period, &mut http).await {
            Ok(r) => r,
            Err(_) => {
                warn!("in-flight HTTP requests did not finish in time; stopping anyway");
                http.abort();
                Ok(Ok(()))
            }
        },
    };
    if tokio::time::timeout(c.grpc_grace_period, &mut grpc)
        .await
        .is_err()
    {
        warn!("in-flight gRPC requests did not finish in time; stopping anyway");
        grpc.abort();
    }
    let _ = refresher.await;
    signals.abort();
    served
        .context("HTTP server task")?
        .context("serving HTTP")?;
    info!("exiting");
    Ok(())
}

fn local(l: &tokio::net::TcpListener) -> String {
    l.local_addr().map(|a| a.to_string()).unwrap_or_default()
}

async fn wait_for_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(error = %e, "installing signal handlers");
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => warn!("received SIGTERM, exiting gracefully..."),
        _ = int.recv() => warn!("received SIGINT, exiting gracefully..."),
        () = shutdown.cancelled() => return,
    }
    shutdown.cancel();
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Wrap {
        #[command(flatten)]
        c: Config,
    }

    #[test]
    fn defaults_and_flag_names_match_thanos() {
        let c = Wrap::parse_from(["strata"]).c;
        assert_eq!(c.http_address, "0.0.0.0:10902");
        assert_eq!(c.grpc_address, "0.0.0.0:10901");
        assert_eq!(c.query_timeout, Duration::from_secs(120));
        assert_eq!(c.max_concurrent, 20);
        assert!(c.partial_response_default());
        assert_eq!(c.sd_interval, Duration::from_secs(300));
        assert_eq!(c.default_evaluation_interval, Duration::from_secs(60));
        assert!(!c.auto_downsampling);
        assert!(c.dynamic_lookback_delta());
        assert_eq!(c.lookback_delta_ms(), 0);
        for (flag, want) in [
            ("--no-query.dynamic-lookback-delta", false),
            ("--query.dynamic-lookback-delta=false", false),
            ("--query.dynamic-lookback-delta", true),
        ] {
            let c = Wrap::parse_from(["strata", flag]).c;
            assert_eq!(c.dynamic_lookback_delta(), want, "{flag}");
        }
        let c = Wrap::parse_from([
            "strata",
            "--endpoint=127.0.0.1:1",
            "--store=dns+localhost:2",
            "--query.replica-label=a,b",
            "--query.replica-label=c",
            "--no-query.partial-response",
            "--endpoint.sd-config=endpoints:\n  - address: 127.0.0.1:3\n    strict: true\n",
        ])
        .c;
        assert_eq!(c.replica_labels, ["a", "b", "c"]);
        assert!(!c.partial_response_default());
        for (flag, want) in [
            ("--query.partial-response=false", false),
            ("--query.partial-response=true", true),
            ("--query.partial-response", true),
        ] {
            let c = Wrap::parse_from(["strata", flag]).c;
            assert_eq!(c.partial_response_default(), want, "{flag}");
        }
        let o = c.endpoint_options().unwrap();
        assert_eq!(o.specs.len(), 3);
        assert_eq!(o.strict.len(), 1);
        let c = Wrap::parse_from(["strata", "--endpoint=nope"]).c;
        assert!(c.endpoint_options().is_err());
        assert!(Wrap::try_parse_from([
            "strata",
            "--endpoint.sd-config=a",
            "--endpoint.sd-config-file=b"
        ])
        .is_err());
    }
}

//! `strata demo`: the whole highly available stack on one machine, in one command.
//!
//! It starts, as child processes of this one (each a `strata` subcommand with
//! upstream flags, logging to `<data-dir>/logs/`):
//! - two `strata server` replicas with external labels `cluster` and
//!   `prometheus_replica` (`a`, `b`), each scraping both replicas and any
//!   `--scrape-target`, with short blocks (`--block-duration`, min = max);
//! - a `strata sidecar` per replica, shipping blocks to a FILESYSTEM bucket in the
//!   data directory and serving recent data over the StoreAPI;
//! - a `strata store` gateway over that bucket;
//! - a `strata compact --wait` compactor over that bucket, deduplicating the
//!   replicas into one block per range and downsampling as the bucket grows;
//! - a `strata query` deduplicating on `prometheus_replica`, serving the
//!   Prometheus HTTP API at `--http-address`.
//!
//! It prints the URL and a query to paste, and runs until SIGINT/SIGTERM (or
//! until a component exits), then stops every component, newest first.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::common::{duration_arg, wait_for_signal};

/// `strata demo` flags.
#[derive(Debug, Args)]
pub struct Config {
    /// Where the replicas, the bucket, the store gateway's cache and the logs live.
    #[arg(long = "data-dir", default_value = "./strata-demo")]
    data_dir: PathBuf,
    /// Listen address of the querier's HTTP API (what Grafana or a browser uses).
    #[arg(long = "http-address", default_value = "127.0.0.1:9090")]
    http_address: String,
    /// An extra target (`host:port`, serving `/metrics`) that both replicas
    /// scrape. Repeatable.
    #[arg(long = "scrape-target")]
    scrape_targets: Vec<String>,
    /// Block duration of the replicas (min = max, as a sidecar needs). Short, so
    /// blocks reach the bucket within minutes; `2h` is the production value.
    #[arg(long = "block-duration", value_parser = duration_arg, default_value = "5m")]
    block_duration: Duration,
    /// How often the replicas scrape.
    #[arg(long = "scrape-interval", default_value = "5s")]
    scrape_interval: String,
    /// Local retention of the replicas: older data is served from the bucket.
    #[arg(long = "retention", default_value = "1d")]
    retention: String,
    /// How often the store gateway looks for new blocks in the bucket.
    #[arg(long = "sync-block-duration", default_value = "1m")]
    sync_block_duration: String,
    /// Value of the `cluster` external label.
    #[arg(long = "cluster", default_value = "demo")]
    cluster: String,
}

/// One running component.
struct Component {
    name: &'static str,
    child: Child,
    /// Its HTTP address (`host:port`).
    http: String,
}

fn out(s: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{s}");
}

/// A free loopback port (bound and released; the child binds it right after).
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A YAML double-quoted string.
fn yaml_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// The `prometheus.yml` of one replica.
fn replica_config(c: &Config, replica: &str, self_targets: &[String]) -> String {
    let mut y = String::new();
    let _ = writeln!(y, "global:");
    let _ = writeln!(y, "  scrape_interval: {}", c.scrape_interval);
    let _ = writeln!(y, "  evaluation_interval: {}", c.scrape_interval);
    let _ = writeln!(y, "  external_labels:");
    let _ = writeln!(y, "    cluster: {}", yaml_str(&c.cluster));
    let _ = writeln!(y, "    prometheus_replica: {}", yaml_str(replica));
    let _ = writeln!(y, "scrape_configs:");
    let _ = writeln!(y, "  - job_name: strata");
    let _ = writeln!(y, "    static_configs:");
    let list: Vec<String> = self_targets.iter().map(|t| yaml_str(t)).collect();
    let _ = writeln!(y, "      - targets: [{}]", list.join(", "));
    if !c.scrape_targets.is_empty() {
        let list: Vec<String> = c.scrape_targets.iter().map(|t| yaml_str(t)).collect();
        let _ = writeln!(y, "  - job_name: targets");
        let _ = writeln!(y, "    static_configs:");
        let _ = writeln!(y, "      - targets: [{}]", list.join(", "));
    }
    y
}

/// Starts `strata <args>` with its output in `logs/<name>.log`.
fn spawn(
    name: &'static str,
    args: &[String],
    logs: &Path,
    http: String,
) -> anyhow::Result<Component> {
    let exe = std::env::current_exe().context("locating the strata binary")?;
    let log_path = logs.join(format!("{name}.log"));
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let err = log
        .try_clone()
        .with_context(|| format!("opening {}", log_path.display()))?;
    let child = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(err))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    info!(component = name, pid = child.id().unwrap_or(0), log = %log_path.display(), "started");
    Ok(Component { name, child, http })
}

/// Waits until `http://addr/-/ready` answers 200, the process exits, or a minute
/// passes.
async fn wait_ready(c: &mut Component, logs: &Path) -> anyhow::Result<()> {
    let url = format!("http://{}/-/ready", c.http);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = c.child.try_wait()? {
            bail!(
                "{} exited with {status} before becoming ready; see {}",
                c.name,
                logs.join(format!("{}.log", c.name)).display()
            );
        }
        let u = url.clone();
        let ok = tokio::task::spawn_blocking(move || {
            ureq::get(&u)
                .timeout(Duration::from_secs(2))
                .call()
                .map(|r| r.status() == 200)
                .unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        if ok {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{} not ready at {url} after 60s; see {}",
                c.name,
                logs.join(format!("{}.log", c.name)).display()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Stops components newest first: SIGTERM, up to 15 s to exit, then SIGKILL.
async fn stop_all(components: &mut Vec<Component>) {
    while let Some(mut c) = components.pop() {
        if let Ok(Some(_)) = c.child.try_wait() {
            continue;
        }
        if let Some(pid) = c.child.id() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status()
                .await;
        }
        match tokio::time::timeout(Duration::from_secs(15), c.child.wait()).await {
            Ok(Ok(status)) => info!(component = c.name, %status, "stopped"),
            _ => {
                warn!(component = c.name, "did not stop within 15s; killing it");
                let _ = c.child.kill().await;
            }
        }
    }
}

/// Waits for the first component to exit; returns its name and status.
async fn first_exit(components: &mut [Component]) -> (&'static str, String) {
    loop {
        for c in components.iter_mut() {
            if let Ok(Some(status)) = c.child.try_wait() {
                return (c.name, status.to_string());
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Runs the demo until interrupted.
pub async fn run(c: Config) -> anyhow::Result<()> {
    if c.block_duration < Duration::from_secs(60) {
        bail!(
            "--block-duration must be at least 1m (got {:?})",
            c.block_duration
        );
    }
    std::fs::create_dir_all(&c.data_dir)
        .with_context(|| format!("creating {}", c.data_dir.display()))?;
    let dir = std::fs::canonicalize(&c.data_dir)
        .with_context(|| format!("resolving {}", c.data_dir.display()))?;
    let logs = dir.join("logs");
    let bucket = dir.join("bucket");
    for d in [&logs, &bucket, &dir.join("store")] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let bucket_cfg = dir.join("bucket.yml");
    std::fs::write(
        &bucket_cfg,
        format!(
            "type: FILESYSTEM\nconfig:\n  directory: {}\n",
            yaml_str(&bucket.display().to_string())
        ),
    )
    .with_context(|| format!("writing {}", bucket_cfg.display()))?;
    let block = format!("{}s", c.block_duration.as_secs());

    let server_ports = [free_port()?, free_port()?];
    let self_targets: Vec<String> = server_ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    let mut components: Vec<Component> = Vec::new();
    let shutdown = CancellationToken::new();
    tokio::spawn(wait_for_signal(shutdown.clone()));

    let started = start_all(
        &c,
        &dir,
        &logs,
        &bucket_cfg,
        &block,
        &server_ports,
        &self_targets,
        &mut components,
        &shutdown,
    )
    .await;
    let result = match started {
        Err(e) => Err(e),
        Ok(()) if shutdown.is_cancelled() => Ok(()),
        Ok(()) => {
            print_banner(&c, &dir);
            tokio::select! {
                () = shutdown.cancelled() => Ok(()),
                (name, status) = first_exit(&mut components) => {
                    Err(anyhow::anyhow!(
                        "{name} exited unexpectedly ({status}); see {}",
                        logs.join(format!("{name}.log")).display()
                    ))
                }
            }
        }
    };
    info!("stopping the demo");
    stop_all(&mut components).await;
    result
}

#[allow(clippy::too_many_arguments)]
async fn start_all(
    c: &Config,
    dir: &Path,
    logs: &Path,
    bucket_cfg: &Path,
    block: &str,
    server_ports: &[u16; 2],
    self_targets: &[String],
    components: &mut Vec<Component>,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let mut sidecar_grpc = Vec::new();
    for (i, (replica, port)) in ["a", "b"].iter().zip(server_ports).enumerate() {
        let cfg = dir.join(format!("replica-{replica}.yml"));
        std::fs::write(&cfg, replica_config(c, replica, self_targets))
            .with_context(|| format!("writing {}", cfg.display()))?;
        let tsdb = dir.join(format!("replica-{replica}"));
        let http = format!("127.0.0.1:{port}");
        let name = if i == 0 { "server-a" } else { "server-b" };
        let args = vec![
            "server".to_string(),
            format!("--config.file={}", cfg.display()),
            format!("--storage.tsdb.path={}", tsdb.display()),
            format!("--web.listen-address={http}"),
            format!("--storage.tsdb.min-block-duration={block}"),
            format!("--storage.tsdb.max-block-duration={block}"),
            format!("--storage.tsdb.retention.time={}", c.retention),
            "--web.enable-lifecycle".to_string(),
        ];
        components.push(spawn(name, &args, logs, http)?);
        if let Some(last) = components.last_mut() {
            wait_ready(last, logs).await?;
        }
        if shutdown.is_cancelled() {
            return Ok(());
        }
        let grpc = format!("127.0.0.1:{}", free_port()?);
        let shttp = format!("127.0.0.1:{}", free_port()?);
        let name = if i == 0 { "sidecar-a" } else { "sidecar-b" };
        let args = vec![
            "sidecar".to_string(),
            format!("--tsdb.path={}", tsdb.display()),
            format!("--prometheus.url=http://127.0.0.1:{port}"),
            format!("--grpc-address={grpc}"),
            format!("--http-address={shttp}"),
            format!("--objstore.config-file={}", bucket_cfg.display()),
        ];
        components.push(spawn(name, &args, logs, shttp)?);
        if let Some(last) = components.last_mut() {
            wait_ready(last, logs).await?;
        }
        sidecar_grpc.push(grpc);
        if shutdown.is_cancelled() {
            return Ok(());
        }
    }
    let store_grpc = format!("127.0.0.1:{}", free_port()?);
    let store_http = format!("127.0.0.1:{}", free_port()?);
    let args = vec![
        "store".to_string(),
        format!("--data-dir={}", dir.join("store").display()),
        format!("--objstore.config-file={}", bucket_cfg.display()),
        format!("--grpc-address={store_grpc}"),
        format!("--http-address={store_http}"),
        format!("--sync-block-duration={}", c.sync_block_duration),
        // Shorter than the compactor's delete delay, so the store stops
        // serving compacted-away blocks before they are deleted.
        "--ignore-deletion-marks-delay=2m".to_string(),
    ];
    components.push(spawn("store", &args, logs, store_http)?);
    if let Some(last) = components.last_mut() {
        wait_ready(last, logs).await?;
    }
    if shutdown.is_cancelled() {
        return Ok(());
    }
    let compact_http = format!("127.0.0.1:{}", free_port()?);
    let args = vec![
        "compact".to_string(),
        "--wait".to_string(),
        "--wait-interval=1m".to_string(),
        format!("--data-dir={}", dir.join("compact").display()),
        format!("--objstore.config-file={}", bucket_cfg.display()),
        format!("--http-address={compact_http}"),
        "--deduplication.replica-label=prometheus_replica".to_string(),
        // The demo's blocks are minutes long: no need to wait 30 minutes
        // before compacting them, nor two days before deleting their sources.
        "--consistency-delay=1m".to_string(),
        "--delete-delay=10m".to_string(),
    ];
    components.push(spawn("compact", &args, logs, compact_http)?);
    if let Some(last) = components.last_mut() {
        wait_ready(last, logs).await?;
    }
    if shutdown.is_cancelled() {
        return Ok(());
    }
    let query_grpc = format!("127.0.0.1:{}", free_port()?);
    let mut args = vec![
        "query".to_string(),
        format!("--http-address={}", c.http_address),
        format!("--grpc-address={query_grpc}"),
        "--query.replica-label=prometheus_replica".to_string(),
        format!("--endpoint={store_grpc}"),
    ];
    args.extend(sidecar_grpc.iter().map(|g| format!("--endpoint={g}")));
    components.push(spawn("query", &args, logs, c.http_address.clone())?);
    if let Some(last) = components.last_mut() {
        wait_ready(last, logs).await?;
    }
    Ok(())
}

fn print_banner(c: &Config, dir: &Path) {
    let url = format!("http://{}", c.http_address);
    let q = "sum by (instance) (rate(prometheus_http_requests_total[1m]))";
    let enc: String = form_encode(q);
    out("");
    out("Strata demo is running: two replicas, their sidecars, a store gateway, a compactor and a querier.");
    out(&format!(
        "  Query API (Prometheus-compatible, add it to Grafana): {url}"
    ));
    out(&format!("  Try:  curl -s '{url}/api/v1/query?query={enc}'"));
    out(&format!(
        "  Both replicas, not deduplicated:  curl -s '{url}/api/v1/query?query=up&dedup=false'"
    ));
    out(&format!(
        "  Endpoints the querier sees:  curl -s '{url}/api/v1/stores'"
    ));
    out(&format!(
        "  Data, bucket and logs: {}   (blocks reach the bucket after about {} min)",
        dir.display(),
        (c.block_duration.as_secs() * 3 / 2).div_ceil(60) + 1
    ));
    out("Press Ctrl-C to stop.");
}

/// Percent-encodes a query for a URL.
fn form_encode(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                o.push(b as char)
            }
            _ => {
                let _ = write!(o, "%{b:02X}");
            }
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_config_has_external_labels_and_targets() {
        let c = Config {
            data_dir: PathBuf::from("/tmp/x"),
            http_address: "127.0.0.1:9090".into(),
            scrape_targets: vec!["127.0.0.1:9100".into()],
            block_duration: Duration::from_secs(300),
            scrape_interval: "5s".into(),
            retention: "1d".into(),
            sync_block_duration: "1m".into(),
            cluster: "demo".into(),
        };
        let y = replica_config(&c, "a", &["127.0.0.1:1".into(), "127.0.0.1:2".into()]);
        let cfg = strata_config::Config::parse(&y).expect("valid prometheus.yml");
        let ext = &cfg.global.external_labels;
        assert_eq!(ext.get("prometheus_replica").map(String::as_str), Some("a"));
        assert_eq!(ext.get("cluster").map(String::as_str), Some("demo"));
        assert!(y.contains("\"127.0.0.1:9100\""));
        assert_eq!(form_encode("up{a=\"b\"}"), "up%7Ba%3D%22b%22%7D");
    }
}

//! The set of StoreAPI endpoints a querier fans out to (Thanos
//! `pkg/query/endpointset.go`): resolved from specs, one [`Client`] per address,
//! Info refreshed periodically, health tracked for pruning and `/api/v1/stores`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use futures::future::join_all;
use strata_storeapi::{Client, ClientOptions, EndpointInfo};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::discovery::{read_sd_files, EndpointSpec, Resolver};

/// How the set discovers and checks its endpoints.
#[derive(Clone, Debug)]
pub struct EndpointSetOptions {
    /// Endpoints given on the command line or in the SD config.
    pub specs: Vec<EndpointSpec>,
    /// Specs kept in the fan-out even while unhealthy (`strict: true`).
    pub strict: BTreeSet<EndpointSpec>,
    /// `--store.sd-files` glob patterns.
    pub sd_files: Vec<String>,
    /// `--store.sd-interval`: how often the SD files are re-read.
    pub sd_interval: Duration,
    /// `--store.sd-dns-interval`: how often DNS names are resolved again.
    pub dns_interval: Duration,
    /// How often Info is asked of every endpoint (Thanos: 5s).
    pub refresh_interval: Duration,
    /// Deadline of one Info call (`--endpoint.info-timeout`, 5s).
    pub info_timeout: Duration,
    /// `--store.unhealthy-timeout`: an endpoint failing its checks this long is left
    /// out of the fan-out.
    pub unhealthy_timeout: Duration,
    /// Options of each client.
    pub client: ClientOptions,
}

impl Default for EndpointSetOptions {
    fn default() -> Self {
        Self {
            specs: Vec::new(),
            strict: BTreeSet::new(),
            sd_files: Vec::new(),
            sd_interval: Duration::from_secs(300),
            dns_interval: Duration::from_secs(30),
            refresh_interval: Duration::from_secs(5),
            info_timeout: Duration::from_secs(5),
            unhealthy_timeout: Duration::from_secs(300),
            client: ClientOptions::default(),
        }
    }
}

/// What is known about one endpoint.
#[derive(Clone, Debug)]
pub struct EndpointStatus {
    /// The address (`host:port`).
    pub addr: String,
    /// The spec it was resolved from.
    pub spec: EndpointSpec,
    /// The client (shares its connection).
    pub client: Client,
    /// The last successful Info answer, if any.
    pub info: Option<EndpointInfo>,
    /// When it was last checked.
    pub last_check: Option<SystemTime>,
    /// The error of the last check (`None` when it succeeded).
    pub last_error: Option<String>,
    /// When the last check succeeded.
    pub last_healthy: Option<Instant>,
    /// Kept in the fan-out even while unhealthy.
    pub strict: bool,
}

impl EndpointStatus {
    /// Whether the last check succeeded.
    pub fn healthy(&self) -> bool {
        self.last_error.is_none() && self.info.is_some()
    }
}

#[derive(Debug, Default)]
struct State {
    /// Resolved addresses per spec (kept when a later resolution fails).
    resolved: BTreeMap<EndpointSpec, Vec<String>>,
    file_specs: Vec<EndpointSpec>,
    endpoints: BTreeMap<String, EndpointStatus>,
    last_sd: Option<Instant>,
    last_dns: Option<Instant>,
}

/// The endpoints and their health; cheap to clone (clones share state).
#[derive(Clone, Debug)]
pub struct EndpointSet {
    opts: Arc<EndpointSetOptions>,
    resolver: Arc<dyn Resolver>,
    state: Arc<RwLock<State>>,
}

impl EndpointSet {
    /// A set over `opts.specs` and `opts.sd_files`; nothing is resolved or checked
    /// until [`EndpointSet::refresh`].
    pub fn new(opts: EndpointSetOptions, resolver: Arc<dyn Resolver>) -> Self {
        Self {
            opts: Arc::new(opts),
            resolver,
            state: Arc::new(RwLock::new(State::default())),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Every known endpoint, sorted by address.
    pub fn statuses(&self) -> Vec<EndpointStatus> {
        self.read().endpoints.values().cloned().collect()
    }

    /// The endpoints a query fans out to: healthy ones, strict ones, ones that
    /// failed for less than the unhealthy timeout, and ones never seen healthy
    /// (the proxy reports those as warnings without calling them).
    pub fn active(&self) -> Vec<EndpointStatus> {
        let timeout = self.opts.unhealthy_timeout;
        self.read()
            .endpoints
            .values()
            .filter(|e| {
                e.healthy()
                    || e.strict
                    || e.info.is_none()
                    || e.last_healthy.is_some_and(|t| t.elapsed() < timeout)
            })
            .cloned()
            .collect()
    }

    /// Re-reads SD files and DNS when due, then asks every endpoint for its Info
    /// (concurrently, each bounded by the info timeout).
    pub async fn refresh(&self) {
        self.rediscover().await;
        let targets: Vec<(String, Client)> = self
            .read()
            .endpoints
            .iter()
            .map(|(a, e)| (a.clone(), e.client.clone()))
            .collect();
        let timeout = self.opts.info_timeout;
        let results = join_all(targets.into_iter().map(|(addr, c)| async move {
            let r = match tokio::time::timeout(timeout, c.refresh_info()).await {
                Ok(Ok(i)) if !i.serves_store_api => {
                    Err(format!("endpoint {addr} does not serve the StoreAPI"))
                }
                Ok(Ok(i)) => Ok(i),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!(
                    "endpoint {addr}: Info did not answer within {timeout:?}"
                )),
            };
            (addr, r)
        }))
        .await;
        let now = SystemTime::now();
        let mut st = self.write();
        for (addr, r) in results {
            let Some(e) = st.endpoints.get_mut(&addr) else {
                continue;
            };
            e.last_check = Some(now);
            match r {
                Ok(i) => {
                    if !e.healthy() {
                        info!(address = %addr, component = %i.component_type, "adding new StoreAPI endpoint");
                    }
                    e.info = Some(i);
                    e.last_error = None;
                    e.last_healthy = Some(Instant::now());
                }
                Err(msg) => {
                    if e.last_error.as_deref() != Some(&msg) {
                        warn!(address = %addr, error = %msg, "StoreAPI endpoint is unhealthy (is it a gRPC StoreAPI server?)");
                    }
                    e.last_error = Some(msg);
                }
            }
        }
    }

    /// Updates the address list from specs, SD files and DNS when their intervals
    /// have passed (always on the first call).
    async fn rediscover(&self) {
        let (sd_due, dns_due) = {
            let st = self.read();
            (
                st.last_sd
                    .is_none_or(|t| t.elapsed() >= self.opts.sd_interval),
                st.last_dns
                    .is_none_or(|t| t.elapsed() >= self.opts.dns_interval),
            )
        };
        if sd_due && !self.opts.sd_files.is_empty() {
            let files = self.opts.sd_files.clone();
            let read = tokio::task::spawn_blocking(move || read_sd_files(&files)).await;
            let mut st = self.write();
            match read {
                Ok(Ok(specs)) => st.file_specs = specs,
                Ok(Err(e)) => {
                    warn!(error = %e, "reading --store.sd-files; keeping the previous endpoints")
                }
                Err(e) => warn!(error = %e, "reading --store.sd-files"),
            }
        }
        if sd_due {
            self.write().last_sd = Some(Instant::now());
        }
        let specs: BTreeSet<EndpointSpec> = {
            let st = self.read();
            self.opts
                .specs
                .iter()
                .chain(st.file_specs.iter())
                .cloned()
                .collect()
        };
        let mut resolved = BTreeMap::new();
        for spec in &specs {
            let is_static = matches!(spec, EndpointSpec::Static(_));
            let previous = self.read().resolved.get(spec).cloned();
            if !is_static && !dns_due {
                if let Some(p) = previous {
                    resolved.insert(spec.clone(), p);
                    continue;
                }
            }
            match spec.resolve(self.resolver.as_ref()).await {
                Ok(a) => {
                    resolved.insert(spec.clone(), a);
                }
                Err(e) => {
                    warn!(endpoint = %spec, error = %e, "resolving endpoint");
                    resolved.insert(spec.clone(), previous.unwrap_or_default());
                }
            }
        }
        let mut st = self.write();
        if dns_due {
            st.last_dns = Some(Instant::now());
        }
        let mut wanted: BTreeMap<String, EndpointSpec> = BTreeMap::new();
        for (spec, addrs) in &resolved {
            for a in addrs {
                wanted.entry(a.clone()).or_insert_with(|| spec.clone());
            }
        }
        st.endpoints.retain(|a, _| {
            let keep = wanted.contains_key(a);
            if !keep {
                info!(address = %a, "removing StoreAPI endpoint");
            }
            keep
        });
        for (addr, spec) in wanted {
            if st.endpoints.contains_key(&addr) {
                continue;
            }
            match Client::lazy(&addr, self.opts.client.clone()) {
                Ok(client) => {
                    let strict = self.opts.strict.contains(&spec);
                    st.endpoints.insert(
                        addr.clone(),
                        EndpointStatus {
                            addr,
                            spec,
                            client,
                            info: None,
                            last_check: None,
                            last_error: Some("not checked yet".into()),
                            last_healthy: None,
                            strict,
                        },
                    );
                }
                Err(e) => warn!(address = %addr, error = %e, "invalid StoreAPI endpoint address"),
            }
        }
        st.resolved = resolved;
    }

    /// Refreshes every `refresh_interval` until `cancel`.
    pub async fn run(self, cancel: CancellationToken) {
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(self.opts.refresh_interval) => {}
            }
            self.refresh().await;
        }
    }

    /// The `data` of `/api/v1/stores`: endpoints with a known component type,
    /// grouped by it.
    pub fn stores_json(&self) -> String {
        let mut groups: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
        for e in self.statuses() {
            let Some(info) = &e.info else { continue };
            let label_sets: Vec<serde_json::Value> = info
                .source
                .label_sets
                .iter()
                .map(|l| {
                    serde_json::Value::Object(
                        l.iter()
                            .map(|x| (x.name.to_string(), x.value.to_string().into()))
                            .collect(),
                    )
                })
                .collect();
            groups
                .entry(info.component_type.clone())
                .or_default()
                .push(serde_json::json!({
                    "name": e.addr,
                    "lastCheck": e.last_check.map(rfc3339),
                    "lastError": e.last_error,
                    "labelSets": label_sets,
                    "minTime": info.source.min_time,
                    "maxTime": info.source.max_time,
                }));
        }
        serde_json::to_string(&groups).unwrap_or_else(|_| "{}".into())
    }
}

/// `t` as RFC 3339 UTC with ms (`2024-01-01T00:00:00.123Z`).
fn rfc3339(t: SystemTime) -> String {
    let ms = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let ms = i64::try_from(ms).unwrap_or(i64::MAX);
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

/// Howard Hinnant's `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_704_067_200_123);
        assert_eq!(rfc3339(t), "2024-01-01T00:00:00.123Z");
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }
}

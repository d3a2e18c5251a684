//! The HTTP side of a scrape: one client per scrape pool, content negotiation,
//! auth, gzip, timeout and body size limit (mirrors Prometheus `targetScraper`).

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use strata_config::{HttpClientConfig, ScrapeConfig};
use strata_model::textparse::Format;

use crate::error::ScrapeError;

/// The `User-Agent` of scrapes.
pub const USER_AGENT_VALUE: &str = concat!("Strata/", env!("CARGO_PKG_VERSION"));

/// Scrapes targets of one pool.
#[derive(Debug)]
pub(crate) struct HttpScraper {
    client: reqwest::Client,
    accept: HeaderValue,
    auth: HttpClientConfig,
    fallback: Option<Format>,
    body_size_limit: u64,
}

/// What a successful request returned.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub(crate) body: Vec<u8>,
    pub(crate) format: Format,
}

/// Media type of a Prometheus protocol name (`config.ScrapeProtocolsHeaders`).
fn protocol_media_type(p: &str) -> Option<&'static str> {
    Some(match p {
        "PrometheusText0.0.4" => "text/plain;version=0.0.4",
        "PrometheusText1.0.0" => "text/plain;version=1.0.0;escaping=allow-utf-8",
        "OpenMetricsText0.0.1" => "application/openmetrics-text;version=0.0.1",
        "OpenMetricsText1.0.0" => "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8",
        _ => return None,
    })
}

/// The `Accept` header for `protocols` like Prometheus' `acceptHeader`: weights
/// from 0.6 (number of known protocols + 1) down by 0.1, ending with `*/*`.
/// `PrometheusProto` is skipped (no protobuf parser).
pub(crate) fn accept_header(protocols: &[String]) -> String {
    let mut parts = Vec::new();
    let mut weight = strata_config::KNOWN_SCRAPE_PROTOCOLS.len() + 1;
    for p in protocols {
        if let Some(m) = protocol_media_type(p) {
            parts.push(format!("{m};q=0.{weight}"));
            weight = weight.saturating_sub(1);
        }
    }
    parts.push(format!("*/*;q=0.{weight}"));
    parts.join(",")
}

fn protocol_format(p: &str) -> Option<Format> {
    match p {
        "PrometheusText0.0.4" | "PrometheusText1.0.0" => Some(Format::PromText),
        "OpenMetricsText0.0.1" | "OpenMetricsText1.0.0" => Some(Format::OpenMetrics),
        _ => None,
    }
}

impl HttpScraper {
    /// Builds the client for `cfg`; fails on unreadable TLS files or a bad proxy.
    pub(crate) fn new(cfg: &ScrapeConfig) -> Result<Self, String> {
        let tls = &cfg.http.tls_config;
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .no_proxy()
            .danger_accept_invalid_certs(tls.insecure_skip_verify)
            .redirect(if cfg.http.follow_redirects {
                reqwest::redirect::Policy::limited(10)
            } else {
                reqwest::redirect::Policy::none()
            });
        if !cfg.enable_compression {
            b = b.no_gzip();
        }
        if let Some(ca) = &tls.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| format!("unable to load specified CA cert {}: {e}", ca.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("unable to use specified CA cert {}: {e}", ca.display()))?;
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
            let mut pem = std::fs::read(cert)
                .map_err(|e| format!("unable to read client cert {}: {e}", cert.display()))?;
            pem.extend(
                std::fs::read(key)
                    .map_err(|e| format!("unable to read client key {}: {e}", key.display()))?,
            );
            let id = reqwest::Identity::from_pem(&pem)
                .map_err(|e| format!("unable to use client cert/key: {e}"))?;
            b = b.identity(id);
        }
        if let Some(p) = &cfg.http.proxy_url {
            let proxy = reqwest::Proxy::all(p).map_err(|e| format!("invalid proxy_url: {e}"))?;
            b = b.proxy(proxy);
        }
        let client = b.build().map_err(|e| e.to_string())?;
        let accept = HeaderValue::from_str(&accept_header(&cfg.scrape_protocols))
            .map_err(|e| e.to_string())?;
        Ok(Self {
            client,
            accept,
            auth: cfg.http.clone(),
            fallback: cfg
                .fallback_scrape_protocol
                .as_deref()
                .and_then(protocol_format),
            body_size_limit: cfg.body_size_limit,
        })
    }

    /// Fetches `url` within `timeout_ms`.
    pub(crate) async fn fetch(&self, url: &str, timeout_ms: i64) -> Result<Fetched, ScrapeError> {
        let timeout = Duration::from_millis(timeout_ms.max(1).unsigned_abs());
        match tokio::time::timeout(timeout, self.fetch_inner(url, timeout)).await {
            Ok(r) => r,
            Err(_) => Err(ScrapeError::Timeout {
                url: url.to_owned(),
                timeout_ms,
            }),
        }
    }

    async fn fetch_inner(&self, url: &str, timeout: Duration) -> Result<Fetched, ScrapeError> {
        let http_err = |e: reqwest::Error| ScrapeError::Http {
            url: url.to_owned(),
            message: error_chain(&e),
        };
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, self.accept.clone());
        headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        if let Ok(v) = HeaderValue::from_str(&format!("{}", timeout.as_secs_f64())) {
            headers.insert("X-Prometheus-Scrape-Timeout-Seconds", v);
        }
        let mut req = self.client.get(url).headers(headers);
        if let Some(b) = &self.auth.basic_auth {
            let password = match (&b.password, &b.password_file) {
                (Some(p), _) => Some(p.clone()),
                (None, Some(f)) => Some(read_secret(f).await?),
                (None, None) => None,
            };
            req = req.basic_auth(&b.username, password);
        }
        if let Some(a) = &self.auth.authorization {
            let cred = match (&a.credentials, &a.credentials_file) {
                (Some(c), _) => c.clone(),
                (None, Some(f)) => read_secret(f).await?,
                (None, None) => String::new(),
            };
            let v = HeaderValue::from_str(&format!("{} {cred}", a.auth_type)).map_err(|e| {
                ScrapeError::Http {
                    url: url.to_owned(),
                    message: format!("invalid authorization header: {e}"),
                }
            })?;
            req = req.header(AUTHORIZATION, v);
        }
        let mut resp = req.send().await.map_err(http_err)?;
        if resp.status() != reqwest::StatusCode::OK {
            return Err(ScrapeError::Status(resp.status().to_string()));
        }
        let ct = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let format = match Format::from_content_type(&ct) {
            Some(f) => f,
            None => self.fallback.ok_or(ScrapeError::ContentType(ct))?,
        };
        let mut body = Vec::with_capacity(
            resp.content_length()
                .unwrap_or(0)
                .min(64 << 20)
                .try_into()
                .unwrap_or(0),
        );
        while let Some(chunk) = resp.chunk().await.map_err(http_err)? {
            if self.body_size_limit > 0 && (body.len() + chunk.len()) as u64 > self.body_size_limit
            {
                return Err(ScrapeError::BodySizeLimit(self.body_size_limit));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched { body, format })
    }
}

async fn read_secret(path: &std::path::Path) -> Result<String, ScrapeError> {
    tokio::fs::read_to_string(path)
        .await
        .map(|s| s.trim().to_owned())
        .map_err(|e| ScrapeError::Http {
            url: String::new(),
            message: format!("unable to read secret file {}: {e}", path.display()),
        })
}

/// The error and its causes, `a: b: c`.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_accept_header_matches_prometheus() {
        let p: Vec<String> = strata_config::DEFAULT_SCRAPE_PROTOCOLS
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            accept_header(&p),
            "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,\
             application/openmetrics-text;version=0.0.1;q=0.5,\
             text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,\
             text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
        );
    }
}

//! Where endpoints come from (Thanos `pkg/discovery/dns` and `pkg/discovery/cache`):
//! address specs with the `dns+`, `dnssrv+` and `dnssrvnoa+` prefixes, their
//! resolution through an injectable [`Resolver`], the `--endpoint.sd-config` YAML
//! and Prometheus file SD (`--store.sd-files`).

use std::fmt::Debug;
use std::net::IpAddr;
use std::path::Path;

use async_trait::async_trait;
use serde::Deserialize;

use crate::error::{Error, Result};

/// One configured endpoint address, before resolution.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EndpointSpec {
    /// `host:port`, used as it is.
    Static(String),
    /// `dns+host:port`: every A/AAAA address of `host`, with `port`.
    Dns {
        /// The name to look up.
        host: String,
        /// The port of every address.
        port: u16,
    },
    /// `dnssrv+name`: the SRV records of `name`, each target looked up as A/AAAA,
    /// with the port of its record.
    DnsSrv(String),
    /// `dnssrvnoa+name`: the SRV records' targets and ports as they are.
    DnsSrvNoA(String),
}

fn split_host_port(addr: &str, whole: &str) -> Result<(String, u16)> {
    let bad = |msg: &str| Error::Address {
        addr: whole.to_string(),
        msg: msg.to_string(),
    };
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| bad("missing port (expected host:port)"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| bad("port is not a number between 0 and 65535"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad("empty host"));
    }
    Ok((host.to_string(), port))
}

impl EndpointSpec {
    /// Parses an address as Thanos accepts it in `--endpoint`.
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim();
        let bad = |msg: &str| Error::Address {
            addr: s.to_string(),
            msg: msg.to_string(),
        };
        if let Some(rest) = s.strip_prefix("dns+") {
            let (host, port) = split_host_port(rest, s)?;
            return Ok(Self::Dns { host, port });
        }
        for (prefix, noa) in [("dnssrv+", false), ("dnssrvnoa+", true)] {
            if let Some(rest) = s.strip_prefix(prefix) {
                if rest.is_empty() || rest.contains(':') {
                    return Err(bad("an SRV name has no port (e.g. _grpc._tcp.svc)"));
                }
                return Ok(if noa {
                    Self::DnsSrvNoA(rest.to_string())
                } else {
                    Self::DnsSrv(rest.to_string())
                });
            }
        }
        if s.contains("://") {
            return Err(bad("expected host:port without a scheme"));
        }
        if let Some((p, _)) = s.split_once('+') {
            if !p.contains(':') && !p.contains('.') {
                return Err(bad(&format!("unknown prefix {p:?}+")));
            }
        }
        split_host_port(s, s)?;
        Ok(Self::Static(s.to_string()))
    }

    /// The addresses (`ip:port` or `host:port`) this spec stands for now.
    pub async fn resolve(&self, r: &dyn Resolver) -> Result<Vec<String>> {
        let mut out = match self {
            Self::Static(a) => vec![a.clone()],
            Self::Dns { host, port } => r
                .lookup_ip(host)
                .await?
                .into_iter()
                .map(|ip| join(&ip.to_string(), *port))
                .collect(),
            Self::DnsSrv(name) => {
                let mut out = Vec::new();
                for (target, port) in r.lookup_srv(name).await? {
                    for ip in r.lookup_ip(&target).await? {
                        out.push(join(&ip.to_string(), port));
                    }
                }
                out
            }
            Self::DnsSrvNoA(name) => r
                .lookup_srv(name)
                .await?
                .into_iter()
                .map(|(t, p)| join(&t, p))
                .collect(),
        };
        out.sort();
        out.dedup();
        Ok(out)
    }
}

impl std::fmt::Display for EndpointSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Static(a) => f.write_str(a),
            Self::Dns { host, port } => write!(f, "dns+{}", join(host, *port)),
            Self::DnsSrv(n) => write!(f, "dnssrv+{n}"),
            Self::DnsSrvNoA(n) => write!(f, "dnssrvnoa+{n}"),
        }
    }
}

/// `host:port`, bracketing IPv6 literals.
fn join(host: &str, port: u16) -> String {
    let host = host.trim_end_matches('.');
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// DNS lookups, injectable for tests.
#[async_trait]
pub trait Resolver: Debug + Send + Sync + 'static {
    /// The A and AAAA addresses of `host`.
    async fn lookup_ip(&self, host: &str) -> Result<Vec<IpAddr>>;
    /// The SRV records of `name`: `(target, port)`.
    async fn lookup_srv(&self, name: &str) -> Result<Vec<(String, u16)>>;
}

/// The system resolver: A/AAAA through the OS (`getaddrinfo`), SRV through
/// hickory with `/etc/resolv.conf`.
#[derive(Debug, Default)]
pub struct SystemResolver {
    srv: tokio::sync::OnceCell<hickory_resolver::TokioResolver>,
}

#[async_trait]
impl Resolver for SystemResolver {
    async fn lookup_ip(&self, host: &str) -> Result<Vec<IpAddr>> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        let addrs = tokio::net::lookup_host((host, 0))
            .await
            .map_err(|e| Error::Dns {
                name: host.to_string(),
                kind: "A/AAAA",
                msg: e.to_string(),
            })?;
        Ok(addrs.map(|a| a.ip()).collect())
    }

    async fn lookup_srv(&self, name: &str) -> Result<Vec<(String, u16)>> {
        let dns = |msg: String| Error::Dns {
            name: name.to_string(),
            kind: "SRV",
            msg,
        };
        let r = self
            .srv
            .get_or_try_init(|| async {
                hickory_resolver::TokioResolver::builder_tokio()
                    .map(|b| b.build())
                    .map_err(|e| dns(format!("reading the system DNS configuration: {e}")))
            })
            .await?;
        let got = r.srv_lookup(name).await.map_err(|e| dns(e.to_string()))?;
        Ok(got
            .iter()
            .map(|s| (s.target().to_utf8(), s.port()))
            .collect())
    }
}

/// `--endpoint.sd-config`: `endpoints: [{address, strict, group, service_config}]`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SdConfig {
    /// The endpoints.
    #[serde(default)]
    pub endpoints: Vec<SdEndpoint>,
}

/// One entry of [`SdConfig`].
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SdEndpoint {
    /// The address, with an optional `dns+`/`dnssrv+` prefix.
    pub address: String,
    /// Kept in the fan-out even while unhealthy.
    #[serde(default)]
    pub strict: bool,
    /// An endpoint group (accepted; treated as a plain endpoint).
    #[serde(default)]
    pub group: bool,
    /// gRPC service config JSON (accepted; ignored).
    #[serde(default)]
    pub service_config: String,
}

impl SdConfig {
    /// Parses the YAML; `origin` names it in errors.
    pub fn parse(yaml: &str, origin: &str) -> Result<Self> {
        if yaml.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_yaml::from_str(yaml).map_err(|e| Error::SdConfig {
            origin: origin.to_string(),
            msg: e.to_string(),
        })
    }

    /// The endpoint specs, in order.
    pub fn specs(&self, origin: &str) -> Result<Vec<EndpointSpec>> {
        self.endpoints
            .iter()
            .map(|e| {
                EndpointSpec::parse(&e.address).map_err(|err| Error::SdConfig {
                    origin: origin.to_string(),
                    msg: err.to_string(),
                })
            })
            .collect()
    }
}

#[derive(Deserialize)]
struct FileSdGroup {
    #[serde(default)]
    targets: Vec<String>,
}

/// Reads Prometheus file SD files matching the glob `patterns` (JSON or YAML lists
/// of `{targets: [...], labels: {...}}`); the targets as endpoint specs.
pub fn read_sd_files(patterns: &[String]) -> Result<Vec<EndpointSpec>> {
    let mut out = Vec::new();
    for pat in patterns {
        let paths = glob::glob(pat).map_err(|e| Error::SdFile {
            path: pat.clone(),
            msg: e.to_string(),
        })?;
        for p in paths.flatten() {
            out.extend(read_sd_file(&p)?);
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn read_sd_file(p: &Path) -> Result<Vec<EndpointSpec>> {
    let err = |msg: String| Error::SdFile {
        path: p.display().to_string(),
        msg,
    };
    let text = std::fs::read_to_string(p).map_err(|e| err(e.to_string()))?;
    parse_sd_file(&text).map_err(|e| err(e.to_string()))
}

/// Parses one file SD document (YAML, which includes JSON).
pub fn parse_sd_file(text: &str) -> Result<Vec<EndpointSpec>> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let groups: Vec<FileSdGroup> = serde_yaml::from_str(text).map_err(|e| Error::SdFile {
        path: String::new(),
        msg: e.to_string(),
    })?;
    groups
        .iter()
        .flat_map(|g| g.targets.iter())
        .map(|t| EndpointSpec::parse(t))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[derive(Debug, Default)]
    struct Fake {
        a: HashMap<String, Vec<IpAddr>>,
        srv: HashMap<String, Vec<(String, u16)>>,
    }

    #[async_trait]
    impl Resolver for Fake {
        async fn lookup_ip(&self, host: &str) -> Result<Vec<IpAddr>> {
            self.a.get(host).cloned().ok_or_else(|| Error::Dns {
                name: host.into(),
                kind: "A/AAAA",
                msg: "no such host".into(),
            })
        }
        async fn lookup_srv(&self, name: &str) -> Result<Vec<(String, u16)>> {
            self.srv.get(name).cloned().ok_or_else(|| Error::Dns {
                name: name.into(),
                kind: "SRV",
                msg: "NXDOMAIN".into(),
            })
        }
    }

    #[test]
    fn parses_prefixes() {
        assert_eq!(
            EndpointSpec::parse("127.0.0.1:10901").unwrap(),
            EndpointSpec::Static("127.0.0.1:10901".into())
        );
        assert_eq!(
            EndpointSpec::parse("dns+sidecar.ns:10901").unwrap(),
            EndpointSpec::Dns {
                host: "sidecar.ns".into(),
                port: 10901
            }
        );
        assert_eq!(
            EndpointSpec::parse("dnssrv+_grpc._tcp.thanos-store.monitoring.svc").unwrap(),
            EndpointSpec::DnsSrv("_grpc._tcp.thanos-store.monitoring.svc".into())
        );
        assert_eq!(
            EndpointSpec::parse("dnssrvnoa+_grpc._tcp.x").unwrap(),
            EndpointSpec::DnsSrvNoA("_grpc._tcp.x".into())
        );
        for bad in [
            "dns+host",
            "host",
            "host:99999",
            "dnssrv+",
            "dnssrv+x:1",
            "http://a:1",
            "foo+a:1",
            ":1",
        ] {
            let e = EndpointSpec::parse(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{bad}: {e}");
        }
        assert_eq!(
            EndpointSpec::parse("dns+a:1").unwrap().to_string(),
            "dns+a:1"
        );
    }

    #[tokio::test]
    async fn resolves_with_an_injected_resolver() {
        let mut f = Fake::default();
        f.a.insert(
            "store.ns".into(),
            vec!["10.0.0.2".parse().unwrap(), "10.0.0.1".parse().unwrap()],
        );
        f.a.insert("s-0.store.ns.".into(), vec!["10.0.1.1".parse().unwrap()]);
        f.a.insert("s-1.store.ns.".into(), vec!["::1".parse().unwrap()]);
        f.srv.insert(
            "_grpc._tcp.store.ns".into(),
            vec![
                ("s-0.store.ns.".into(), 10901),
                ("s-1.store.ns.".into(), 10905),
            ],
        );
        let r = EndpointSpec::parse("dns+store.ns:10901")
            .unwrap()
            .resolve(&f)
            .await
            .unwrap();
        assert_eq!(r, ["10.0.0.1:10901", "10.0.0.2:10901"]);
        let r = EndpointSpec::parse("dnssrv+_grpc._tcp.store.ns")
            .unwrap()
            .resolve(&f)
            .await
            .unwrap();
        assert_eq!(r, ["10.0.1.1:10901", "[::1]:10905"]);
        let r = EndpointSpec::parse("dnssrvnoa+_grpc._tcp.store.ns")
            .unwrap()
            .resolve(&f)
            .await
            .unwrap();
        assert_eq!(r, ["s-0.store.ns:10901", "s-1.store.ns:10905"]);
        let e = EndpointSpec::parse("dnssrv+_grpc._tcp.gone")
            .unwrap()
            .resolve(&f)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("_grpc._tcp.gone"), "{e}");
        let r = EndpointSpec::parse("a:1")
            .unwrap()
            .resolve(&f)
            .await
            .unwrap();
        assert_eq!(r, ["a:1"]);
    }

    #[tokio::test]
    async fn system_resolver_resolves_localhost_and_literals() {
        let r = SystemResolver::default();
        assert_eq!(
            r.lookup_ip("127.0.0.1").await.unwrap(),
            ["127.0.0.1".parse::<IpAddr>().unwrap()]
        );
        let ips = r.lookup_ip("localhost").await.unwrap();
        assert!(ips.iter().any(|i| i.is_loopback()), "{ips:?}");
    }

    #[test]
    fn sd_config_yaml() {
        let c = SdConfig::parse(
            "endpoints:\n  - address: 127.0.0.1:1\n  - address: dnssrv+_grpc._tcp.x\n    strict: true\n",
            "test",
        )
        .unwrap();
        assert!(c.endpoints[1].strict);
        assert_eq!(
            c.specs("test").unwrap(),
            [
                EndpointSpec::Static("127.0.0.1:1".into()),
                EndpointSpec::DnsSrv("_grpc._tcp.x".into())
            ]
        );
        assert!(SdConfig::parse("", "x").unwrap().endpoints.is_empty());
        let e = SdConfig::parse("endpoint: []", "f.yml").unwrap_err();
        assert!(e.to_string().contains("f.yml"), "{e}");
        let c = SdConfig::parse("endpoints:\n  - address: nope\n", "f.yml").unwrap();
        assert!(c.specs("f.yml").is_err());
    }

    #[test]
    fn file_sd_json_and_yaml() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.json"),
            r#"[{"targets":["127.0.0.1:1","127.0.0.1:2"],"labels":{"x":"y"}}]"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("b.yml"), "- targets: ['dns+localhost:3']\n").unwrap();
        let pat = dir.path().join("*").display().to_string();
        let got = read_sd_files(std::slice::from_ref(&pat)).unwrap();
        assert_eq!(got.len(), 3);
        assert!(got.contains(&EndpointSpec::Dns {
            host: "localhost".into(),
            port: 3
        }));
        std::fs::write(dir.path().join("c.json"), "{not json").unwrap();
        let e = read_sd_files(&[pat]).unwrap_err().to_string();
        assert!(e.contains("c.json"), "{e}");
    }
}

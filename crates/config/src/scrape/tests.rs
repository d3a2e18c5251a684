//! `scrape_configs` parsing tests.

use crate::Config;
use strata_model::relabel::Action;

const FULL: &str = r#"
global:
  scrape_interval: 15s
  sample_limit: 1000
  body_size_limit: 10MB
scrape_configs:
  - job_name: node
    honor_labels: true
    honor_timestamps: false
    scheme: https
    metrics_path: /m
    params:
      module: [a, b]
    scrape_interval: 5s
    label_limit: 30
    label_name_length_limit: 100
    label_value_length_limit: 200
    target_limit: 4
    basic_auth:
      username: u
      password_file: secret.txt
    tls_config:
      ca_file: /etc/ca.pem
      insecure_skip_verify: true
      server_name: example
    static_configs:
      - targets: ['localhost:9100', 'h:1']
        labels:
          env: prod
    file_sd_configs:
      - files: ['sd/*.json', '/abs/x.yml']
    relabel_configs:
      - source_labels: [__address__]
        regex: '(.*):\d+'
        target_label: host
      - action: HashMod
        source_labels: [__address__]
        modulus: 4
        target_label: __tmp_hash
    metric_relabel_configs:
      - action: drop
        source_labels: [__name__]
        regex: 'go_.*'
  - job_name: prom
    authorization:
      credentials: tok
"#;

#[test]
fn parses_full_scrape_config() {
    let c = Config::load_file_text_for_test(FULL, "/etc/prom/prometheus.yml");
    assert_eq!(c.scrape_configs.len(), 2);
    let n = &c.scrape_configs[0];
    assert_eq!(n.job_name, "node");
    assert!(n.honor_labels && !n.honor_timestamps);
    assert_eq!(n.scheme, "https");
    assert_eq!(n.metrics_path, "/m");
    assert_eq!(n.params["module"], ["a", "b"]);
    assert_eq!(n.scrape_interval.as_millis(), 5_000);
    assert_eq!(n.scrape_timeout.as_millis(), 5_000);
    assert_eq!(n.sample_limit, 1000);
    assert_eq!(n.body_size_limit, 10 << 20);
    assert_eq!(n.label_limit, 30);
    assert_eq!(n.target_limit, 4);
    let b = n.http.basic_auth.as_ref().unwrap();
    assert_eq!(b.username, "u");
    assert_eq!(
        b.password_file.as_deref().unwrap().to_str(),
        Some("/etc/prom/secret.txt")
    );
    assert!(n.http.tls_config.insecure_skip_verify);
    assert_eq!(n.static_configs[0].targets, ["localhost:9100", "h:1"]);
    assert_eq!(n.static_configs[0].labels["env"], "prod");
    assert_eq!(
        n.file_sd_configs[0].files[0].to_str(),
        Some("/etc/prom/sd/*.json")
    );
    assert_eq!(n.file_sd_configs[0].files[1].to_str(), Some("/abs/x.yml"));
    assert_eq!(n.file_sd_configs[0].refresh_interval.as_millis(), 300_000);
    assert_eq!(n.relabel_configs.len(), 2);
    assert_eq!(n.relabel_configs[1].action, Action::HashMod);
    assert_eq!(n.metric_relabel_configs[0].action, Action::Drop);

    let p = &c.scrape_configs[1];
    assert_eq!(p.scrape_interval.as_millis(), 15_000);
    assert_eq!(p.scrape_timeout.as_millis(), 10_000);
    assert_eq!(p.metrics_path, "/metrics");
    assert_eq!(p.scheme, "http");
    assert!(p.honor_timestamps && !p.honor_labels && p.enable_compression);
    assert_eq!(p.sample_limit, 1000);
    assert_eq!(p.label_limit, 0);
    assert_eq!(p.http.authorization.as_ref().unwrap().auth_type, "Bearer");
    assert_eq!(p.scrape_protocols.len(), 4);
    // The raw section is still there for other readers.
    assert!(c.sections.contains_key("scrape_configs"));
}

#[test]
fn unknown_keys_name_key_and_line() {
    let cases = [
        ("scrape_configs:\n  - job_name: a\n    scrape_intervall: 1s\n", "scrape_intervall", 3),
        (
            "scrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: []\n        label: {}\n",
            "label",
            5,
        ),
        (
            "scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - action: keep\n        regexp: x\n",
            "regexp",
            5,
        ),
        (
            "scrape_configs:\n  - job_name: a\n    tls_config:\n      ca: x\n",
            "ca",
            4,
        ),
        (
            "scrape_configs:\n  - job_name: a\n    basic_auth:\n      user: x\n",
            "user",
            4,
        ),
    ];
    for (text, key, line) in cases {
        let e = Config::parse(text).unwrap_err().to_string();
        assert!(e.contains(key), "{e}");
        assert!(e.contains(&format!("line {line}")), "{text}: {e}");
    }
}

#[test]
fn validation_errors() {
    let cases = [
        ("scrape_configs:\n  - scrape_interval: 1s\n", "job_name is empty"),
        (
            "scrape_configs:\n  - job_name: a\n  - job_name: a\n",
            "found multiple scrape configs with job name \"a\"",
        ),
        (
            "scrape_configs:\n  - job_name: a\n    scrape_interval: 1s\n    scrape_timeout: 2s\n",
            "scrape timeout greater than scrape interval",
        ),
        (
            "scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - source_labels: [x]\n",
            "relabel configuration for replace action requires 'target_label' value",
        ),
        (
            "scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - action: bogus\n",
            "unknown relabel action",
        ),
        (
            "scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - action: keep\n        regex: '('\n",
            "invalid regex",
        ),
        (
            "scrape_configs:\n  - job_name: a\n    scheme: ftp\n",
            "invalid scheme",
        ),
        (
            "scrape_configs:\n  - job_name: a\n    body_size_limit: 10XB\n",
            "unknown unit",
        ),
        (
            "scrape_configs:\n  - job_name: a\n    file_sd_configs:\n      - files: [a.txt]\n",
            "not valid for file discovery",
        ),
        (
            "scrape_configs:\n  - job_name: a\n    scrape_protocols: [Foo]\n",
            "unknown scrape protocol",
        ),
    ];
    for (text, want) in cases {
        let e = Config::parse(text).unwrap_err().to_string();
        assert!(e.contains(want), "{text}: {e}");
    }
}

#[test]
fn timeout_defaults_to_interval_when_shorter() {
    let c = Config::parse("scrape_configs:\n  - job_name: a\n    scrape_interval: 1s\n").unwrap();
    assert_eq!(c.scrape_configs[0].scrape_timeout.as_millis(), 1_000);
    let c = Config::parse("scrape_configs: []\n").unwrap();
    assert!(c.scrape_configs.is_empty());
}

#[test]
fn sizes() {
    use crate::parse_size;
    let v = |s: &str| serde_yaml::Value::String(s.into());
    assert_eq!(parse_size(&v("0")).unwrap(), 0);
    assert_eq!(parse_size(&v("1KB")).unwrap(), 1024);
    assert_eq!(parse_size(&v("2MiB")).unwrap(), 2 << 20);
    assert_eq!(parse_size(&serde_yaml::Value::from(5u64)).unwrap(), 5);
    assert!(parse_size(&v("MB")).is_err());
}

#[test]
fn parses_a_bare_relabel_config_list() {
    let rc = crate::parse_relabel_configs(
        "- action: keep\n  source_labels: [cluster]\n  regex: eu.*\n- action: hashmod\n  source_labels: [__block_id]\n  target_label: shard\n  modulus: 2\n",
    )
    .unwrap();
    assert_eq!(rc.len(), 2);
    assert_eq!(rc[0].action, Action::Keep);
    assert_eq!(rc[1].modulus, 2);
    assert!(crate::parse_relabel_configs("").unwrap().is_empty());
    let e = crate::parse_relabel_configs("- action: keep\n  bogus: 1\n").unwrap_err();
    assert!(e.to_string().contains("bogus"), "{e}");
    let e = crate::parse_relabel_configs("- action: nope\n").unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
}

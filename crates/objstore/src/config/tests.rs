use std::time::Duration;

use object_store::aws::AmazonS3ConfigKey;
use object_store::azure::AzureConfigKey;
use object_store::gcp::GoogleConfigKey;
use object_store::ClientConfigKey;

use super::*;

fn err(yaml: &str) -> String {
    BucketConfig::parse(yaml).unwrap_err().to_string()
}

#[test]
fn filesystem() {
    let c = BucketConfig::parse("type: FILESYSTEM\nconfig:\n  directory: /tmp/x\n").unwrap();
    assert_eq!(c, BucketConfig::filesystem("/tmp/x"));
    assert_eq!(c.name(), "fs: /tmp/x");
    // The type is case-insensitive; prefix is kept.
    let c = BucketConfig::parse("type: filesystem\nconfig: {directory: d}\nprefix: p/q\n").unwrap();
    assert_eq!(c.prefix, "p/q");
    assert!(err("type: FILESYSTEM\nconfig: {}\n").contains("missing directory"));
    assert!(err("type: FILESYSTEM\n").contains("missing directory"));
}

#[test]
fn filesystem_creates_directory() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("a/b");
    let c = BucketConfig::filesystem(dir.to_str().unwrap());
    c.build_store().unwrap();
    assert!(dir.is_dir());
}

#[test]
fn unknown_keys_and_types_are_errors() {
    let e = err("type: FILESYSTEM\nconfig:\n  directory: /tmp/x\n  dirctory: y\n");
    assert!(e.contains("unknown field `dirctory`"), "{e}");
    assert!(e.contains("line 4"), "{e}");
    let e = err("type: FILESYSTEM\nconfig: {directory: x}\nextra: 1\n");
    assert!(e.contains("unknown field `extra`"), "{e}");
    let e = err(
        "type: S3\nconfig:\n  bucket: b\n  endpoint: e\n  http_config:\n    idle_timeout: 1s\n",
    );
    assert!(
        e.contains("unknown field `idle_timeout`") && e.contains("line 6"),
        "{e}"
    );
    let e = err("type: NOPE\nconfig: {}\n");
    assert!(e.contains("unknown type \"NOPE\""), "{e}");
    let e = err("type: SWIFT\nconfig: {}\n");
    assert!(e.contains("SWIFT is not supported"), "{e}");
    let e = err("config: {}\n");
    assert!(e.contains("missing field `type`"), "{e}");
    let e = err("type: S3\nconfig:\n  bucket: b\n  endpoint: e\n  http_config:\n    idle_conn_timeout: 5x\n");
    assert!(e.contains("not a valid duration"), "{e}");
}

const S3_FULL: &str = r#"
type: S3
config:
  bucket: "thanos"
  endpoint: "minio:9000"
  region: "eu-west-1"
  access_key: "AK"
  secret_key: "SK"
  session_token: "TOK"
  insecure: true
  signature_version2: false
  put_user_metadata:
    team: obs
  http_config:
    idle_conn_timeout: 1m
    response_header_timeout: 30s
    tls_handshake_timeout: 5s
    max_idle_conns_per_host: 7
    insecure_skip_verify: true
  trace:
    enable: false
  list_objects_version: v2
  bucket_lookup_type: path
  send_content_md5: true
  disable_multipart: false
  part_size: 16777216
  sse_config:
    type: SSE-KMS
    kms_key_id: key-1
  sts_endpoint: "https://sts.example"
  max_retries: 3
prefix: tenant-a
"#;

#[test]
fn s3_mapping() {
    let c = BucketConfig::parse(S3_FULL).unwrap();
    let ProviderConfig::S3(s3) = &c.provider else {
        panic!("not S3: {c:?}");
    };
    assert_eq!(s3.part_size, 16 << 20);
    assert_eq!(c.part_size(), 16 << 20);
    assert_eq!(c.name(), "thanos");
    assert_eq!(
        s3.http_config.idle_conn_timeout,
        Some(Duration::from_secs(60))
    );
    let b = s3.builder().unwrap();
    let v = |k: AmazonS3ConfigKey| b.get_config_value(&k);
    assert_eq!(v(AmazonS3ConfigKey::Bucket).as_deref(), Some("thanos"));
    assert_eq!(
        v(AmazonS3ConfigKey::Endpoint).as_deref(),
        Some("http://minio:9000")
    );
    assert_eq!(v(AmazonS3ConfigKey::Region).as_deref(), Some("eu-west-1"));
    assert_eq!(v(AmazonS3ConfigKey::AccessKeyId).as_deref(), Some("AK"));
    assert_eq!(v(AmazonS3ConfigKey::SecretAccessKey).as_deref(), Some("SK"));
    assert_eq!(v(AmazonS3ConfigKey::Token).as_deref(), Some("TOK"));
    assert_eq!(
        v(AmazonS3ConfigKey::VirtualHostedStyleRequest).as_deref(),
        Some("false")
    );
    assert_eq!(
        v(AmazonS3ConfigKey::StsEndpoint).as_deref(),
        Some("https://sts.example")
    );
    let cv = |k: ClientConfigKey| b.get_config_value(&AmazonS3ConfigKey::Client(k));
    assert_eq!(cv(ClientConfigKey::AllowHttp).as_deref(), Some("true"));
    assert_eq!(
        cv(ClientConfigKey::AllowInvalidCertificates).as_deref(),
        Some("true")
    );
    assert_eq!(cv(ClientConfigKey::PoolIdleTimeout).as_deref(), Some("1m"));
    assert_eq!(cv(ClientConfigKey::ConnectTimeout).as_deref(), Some("5s"));
    assert_eq!(
        cv(ClientConfigKey::PoolMaxIdlePerHost).as_deref(),
        Some("7")
    );
    // The store builds (no network access happens before the first request).
    c.build_store().unwrap();
}

#[test]
fn s3_defaults_and_lookup_styles() {
    let c = BucketConfig::parse(
        "type: S3\nconfig: {bucket: b, endpoint: s3.us-east-1.amazonaws.com}\n",
    )
    .unwrap();
    let ProviderConfig::S3(s3) = &c.provider else {
        panic!("not S3");
    };
    assert_eq!(s3.part_size, 64 << 20);
    assert!(s3.send_content_md5);
    assert!(s3.virtual_hosted(), "auto → virtual-hosted on AWS");
    assert_eq!(s3.endpoint_url(), "https://b.s3.us-east-1.amazonaws.com");
    let b = s3.builder().unwrap();
    assert_eq!(
        b.get_config_value(&AmazonS3ConfigKey::Region).as_deref(),
        Some("us-east-1")
    );
    let mut other = s3.clone();
    other.endpoint = "minio:9000".into();
    assert!(!other.virtual_hosted(), "auto → path elsewhere");
    other.bucket_lookup_type = "virtual-hosted".into();
    assert!(other.virtual_hosted());
    other.bucket_lookup_type = "path".into();
    other.endpoint = "s3.amazonaws.com".into();
    assert!(!other.virtual_hosted());
    assert_eq!(other.endpoint_url(), "https://s3.amazonaws.com");
}

#[test]
fn s3_errors() {
    let e = err("type: S3\nconfig: {bucket: b, endpoint: e, signature_version2: true}\n");
    assert!(
        e.contains("signature_version2: true is not supported"),
        "{e}"
    );
    let e = err("type: S3\nconfig: {bucket: b}\n");
    assert!(e.contains("no s3 endpoint"), "{e}");
    let e = err("type: S3\nconfig: {endpoint: e}\n");
    assert!(e.contains("missing bucket name"), "{e}");
    let e = err("type: S3\nconfig: {bucket: b, endpoint: e, access_key: a}\n");
    assert!(e.contains("access_key and secret_key"), "{e}");
    let e = err("type: S3\nconfig: {bucket: b, endpoint: e, access_key: a, secret_key: s, aws_sdk_auth: true}\n");
    assert!(e.contains("mutually exclusive"), "{e}");
    let e = err("type: S3\nconfig: {bucket: b, endpoint: e, bucket_lookup_type: dns}\n");
    assert!(e.contains("bucket_lookup_type"), "{e}");
    let e = err("type: S3\nconfig: {bucket: b, endpoint: e, sse_config: {type: SSE-KMS}}\n");
    assert!(e.contains("SSE-KMS"), "{e}");
    let e = err("type: S3\nconfig: {bucket: b, endpoint: e, sse_config: {type: SSE-C}}\n");
    assert!(e.contains("SSE-C"), "{e}");
    let e = err("type: S3\nconfig: {bucket: b, endpoint: e, list_objects_version: v3}\n");
    assert!(e.contains("list objects version"), "{e}");
    let e = err(
        "type: S3\nconfig: {bucket: b, endpoint: e, http_config: {tls_config: {cert_file: c}}}\n",
    );
    assert!(e.contains("client certificates"), "{e}");
}

#[test]
fn s3_disable_multipart() {
    let c = BucketConfig::parse(
        "type: S3\nconfig: {bucket: b, endpoint: e, disable_multipart: true}\n",
    )
    .unwrap();
    assert!(c.multipart_disabled());
}

#[test]
fn gcs_mapping() {
    let sa = r#"{"type": "service_account", "private_key": "k", "client_email": "x@y"}"#;
    let yaml = format!(
        "type: GCS\nconfig:\n  bucket: metrics\n  service_account: '{sa}'\n  chunk_size_bytes: 8388608\n  max_retries: 2\n"
    );
    let c = BucketConfig::parse(&yaml).unwrap();
    let ProviderConfig::Gcs(g) = &c.provider else {
        panic!("not GCS");
    };
    assert_eq!(g.service_account, sa);
    assert_eq!(c.part_size(), 8 << 20);
    assert_eq!(c.name(), "metrics");
    let b = g.builder_for(None).unwrap();
    assert_eq!(
        b.get_config_value(&GoogleConfigKey::Bucket).as_deref(),
        Some("metrics")
    );
    assert_eq!(
        b.get_config_value(&GoogleConfigKey::ServiceAccountKey)
            .as_deref(),
        Some(sa)
    );
    assert!(err("type: GCS\nconfig: {}\n").contains("missing Google Cloud Storage bucket"));
    assert!(err("type: GCS\nconfig: {bucket: b, use_grpc: true}\n").contains("use_grpc"));
    assert!(err("type: GCS\nconfig: {bucket: b, grpc: true}\n").contains("unknown field `grpc`"));
}

#[test]
fn azure_mapping() {
    let yaml = "type: AZURE\nconfig:\n  storage_account: acct\n  storage_account_key: a2V5\n  container: blocks\n  max_retries: 4\n  pipeline_config:\n    try_timeout: 30s\n";
    let c = BucketConfig::parse(yaml).unwrap();
    let ProviderConfig::Azure(a) = &c.provider else {
        panic!("not AZURE");
    };
    assert_eq!(a.endpoint, "blob.core.windows.net");
    assert!(a.storage_create_container);
    assert_eq!(a.max_tries(), 4);
    assert_eq!(a.pipeline_config.try_timeout, Some(Duration::from_secs(30)));
    assert_eq!(c.name(), "blocks");
    let b = a.builder().unwrap();
    let v = |k: AzureConfigKey| b.get_config_value(&k);
    assert_eq!(v(AzureConfigKey::AccountName).as_deref(), Some("acct"));
    assert_eq!(v(AzureConfigKey::AccessKey).as_deref(), Some("a2V5"));
    assert_eq!(v(AzureConfigKey::ContainerName).as_deref(), Some("blocks"));
    assert_eq!(
        v(AzureConfigKey::Endpoint).as_deref(),
        Some("https://acct.blob.core.windows.net")
    );
    c.build_store().unwrap();

    // Connection string: account, key and endpoint come from it.
    let yaml = "type: AZURE\nconfig:\n  storage_connection_string: 'DefaultEndpointsProtocol=http;AccountName=dev;AccountKey=a2V5==;BlobEndpoint=http://127.0.0.1:10000/dev;'\n  container: c\n";
    let c = BucketConfig::parse(yaml).unwrap();
    let ProviderConfig::Azure(a) = &c.provider else {
        panic!("not AZURE");
    };
    let b = a.builder().unwrap();
    let v = |k: AzureConfigKey| b.get_config_value(&k);
    assert_eq!(v(AzureConfigKey::AccountName).as_deref(), Some("dev"));
    assert_eq!(v(AzureConfigKey::AccessKey).as_deref(), Some("a2V5=="));
    assert_eq!(
        v(AzureConfigKey::Endpoint).as_deref(),
        Some("http://127.0.0.1:10000/dev")
    );

    // Service principal.
    let yaml = "type: AZURE\nconfig: {storage_account: a, container: c, client_id: id, client_secret: s, az_tenant_id: t}\n";
    let c = BucketConfig::parse(yaml).unwrap();
    let ProviderConfig::Azure(a) = &c.provider else {
        panic!("not AZURE");
    };
    let b = a.builder().unwrap();
    assert_eq!(
        b.get_config_value(&AzureConfigKey::ClientId).as_deref(),
        Some("id")
    );
    assert_eq!(
        b.get_config_value(&AzureConfigKey::AuthorityId).as_deref(),
        Some("t")
    );
}

#[test]
fn azure_errors() {
    assert!(err("type: AZURE\nconfig: {container: c}\n").contains("storage_account is required"));
    assert!(err("type: AZURE\nconfig: {storage_account: a}\n").contains("no container"));
    let e = err("type: AZURE\nconfig: {storage_account: a, container: c, user_assigned_id: u, storage_account_key: k}\n");
    assert!(e.contains("user_assigned_id"), "{e}");
    let e = err(
        "type: AZURE\nconfig: {storage_account: a, container: c, pipeline_config: {tries: 1}}\n",
    );
    assert!(e.contains("unknown field `tries`"), "{e}");
}

#[test]
fn connection_string_parsing() {
    let cs =
        azure::parse_connection_string("AccountName=a;AccountKey=k==;EndpointSuffix=x").unwrap();
    assert_eq!(cs.account.as_deref(), Some("a"));
    assert_eq!(cs.key.as_deref(), Some("k=="));
    assert_eq!(cs.blob_endpoint, None);
    assert!(azure::parse_connection_string("garbage").is_err());
}

//! Tests of the per-scrape append path against an in-memory appender.

use std::sync::{Arc, Mutex};

use strata_model::relabel::{Action, Regex, RelabelConfig};
use strata_model::{is_stale_nan, labels, Labels};
use strata_storage::{AppendError, Appender, CommitReport};

use super::*;

type Appended = Vec<(Labels, i64, f64)>;
type Log = Arc<Mutex<Appended>>;

struct VecAppender(Log);

impl Appender for VecAppender {
    fn append(&mut self, labels: &Labels, t: i64, v: f64) -> Result<(), AppendError> {
        self.0.lock().unwrap().push((labels.clone(), t, v));
        Ok(())
    }
    fn commit(self: Box<Self>) -> Result<CommitReport, AppendError> {
        Ok(CommitReport::default())
    }
    fn rollback(self: Box<Self>) {}
}

fn opts() -> ScrapeOptions {
    ScrapeOptions {
        target_labels: labels! {"job" => "j", "instance" => "h:1"},
        honor_timestamps: true,
        ..ScrapeOptions::default()
    }
}

fn run(
    c: &mut ScrapeCache,
    body: &str,
    ts: i64,
    o: &ScrapeOptions,
) -> (Result<AppendStats, ScrapeError>, Appended) {
    let log: Log = Arc::default();
    let mut app = VecAppender(log.clone());
    let r = c.append(&mut app, body.as_bytes(), Format::PromText, ts, o);
    let v = log.lock().unwrap().clone();
    (r, v)
}

#[test]
fn appends_with_target_labels_and_staleness() {
    let mut c = ScrapeCache::new();
    let o = opts();
    let (r, v) = run(&mut c, "a 1\nb{x=\"y\"} 2\n", 1000, &o);
    let s = r.unwrap();
    assert_eq!((s.scraped, s.post_relabel, s.series_added), (2, 2, 2));
    assert_eq!(
        v[0].0,
        labels! {"__name__" => "a", "job" => "j", "instance" => "h:1"}
    );
    assert_eq!((v[0].1, v[0].2), (1000, 1.0));
    // b vanishes: stale marker at the next scrape's time.
    let (r, v) = run(&mut c, "a 3\n", 2000, &o);
    let s = r.unwrap();
    assert_eq!((s.scraped, s.series_added, s.stale_markers), (1, 0, 1));
    assert_eq!(v.len(), 2);
    assert_eq!(v[1].0.get("__name__"), Some("b"));
    assert!(is_stale_nan(v[1].2));
    assert_eq!(v[1].1, 2000);
    // Failure: everything of the last scrape goes stale.
    let log: Log = Arc::default();
    let mut app = VecAppender(log.clone());
    assert_eq!(c.append_failed(&mut app, 3000).unwrap(), 1);
    assert!(is_stale_nan(log.lock().unwrap()[0].2));
}

#[test]
fn conflicting_labels_are_exported_unless_honored() {
    let mut c = ScrapeCache::new();
    let (r, v) = run(
        &mut c,
        "m{job=\"other\",exported_job=\"z\"} 1\n",
        1,
        &opts(),
    );
    r.unwrap();
    assert_eq!(v[0].0.get("job"), Some("j"));
    assert_eq!(v[0].0.get("exported_job"), Some("z"));
    assert_eq!(v[0].0.get("exported_exported_job"), Some("other"));
    let mut c = ScrapeCache::new();
    let o = ScrapeOptions {
        honor_labels: true,
        ..opts()
    };
    let (_, v) = run(&mut c, "m{job=\"other\"} 1\n", 1, &o);
    assert_eq!(v[0].0.get("job"), Some("other"));
    assert_eq!(v[0].0.get("instance"), Some("h:1"));
}

#[test]
fn timestamps_honored_or_not_and_future_dropped() {
    let mut c = ScrapeCache::new();
    let (r, v) = run(&mut c, "a 1 500\nb 1 99999999999999\n", 1000, &opts());
    let s = r.unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].1, 500);
    assert_eq!(s.too_far_in_future, 1);
    assert!(s.warning().unwrap().contains("1 too far in the future"));
    let mut c = ScrapeCache::new();
    let o = ScrapeOptions {
        honor_timestamps: false,
        ..opts()
    };
    let (_, v) = run(&mut c, "a 1 500\n", 1000, &o);
    assert_eq!(v[0].1, 1000);
}

#[test]
fn duplicates_keep_first() {
    let mut c = ScrapeCache::new();
    let (r, v) = run(&mut c, "a 1\na 2\na{} 3\n", 1, &opts());
    assert_eq!(r.unwrap().duplicates, 2);
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].2, 1.0);
}

#[test]
fn limits_fail_the_scrape() {
    let o = ScrapeOptions {
        sample_limit: 2,
        ..opts()
    };
    let (r, _) = run(&mut ScrapeCache::new(), "a 1\nb 1\nc 1\n", 1, &o);
    assert_eq!(
        r.unwrap_err(),
        ScrapeError::SampleLimit {
            samples: 3,
            limit: 2
        }
    );
    let o = ScrapeOptions {
        label_limit: 3,
        ..opts()
    };
    let (r, _) = run(&mut ScrapeCache::new(), "a{x=\"1\"} 1\n", 1, &o);
    let e = r.unwrap_err().to_string();
    assert!(
        e.contains("label_limit exceeded (metric: a, number of labels: 4, limit: 3)"),
        "{e}"
    );
    let o = ScrapeOptions {
        label_value_length_limit: 3,
        ..opts()
    };
    let (r, _) = run(&mut ScrapeCache::new(), "a{x=\"1234\"} 1\n", 1, &o);
    assert!(r
        .unwrap_err()
        .to_string()
        .contains("label_value_length_limit exceeded"));
    let o = ScrapeOptions {
        label_name_length_limit: 3,
        ..opts()
    };
    let (r, _) = run(&mut ScrapeCache::new(), "a{xxxx=\"1\"} 1\n", 1, &o);
    assert!(r
        .unwrap_err()
        .to_string()
        .contains("label_name_length_limit exceeded"));
    let (r, _) = run(&mut ScrapeCache::new(), "a{x=\"1} 1\n", 1, &opts());
    assert!(r
        .unwrap_err()
        .to_string()
        .starts_with("parsing exposition: line 1"));
}

#[test]
fn metric_relabel_drops_and_counts() {
    let o = ScrapeOptions {
        metric_relabel: vec![RelabelConfig {
            source_labels: vec!["__name__".into()],
            regex: Regex::new("go_.*").unwrap(),
            action: Action::Drop,
            ..RelabelConfig::default()
        }]
        .into(),
        ..opts()
    };
    let mut c = ScrapeCache::new();
    for _ in 0..2 {
        let (r, v) = run(&mut c, "go_x 1\nkeep 2\n", 1, &o);
        let s = r.unwrap();
        assert_eq!((s.scraped, s.post_relabel), (2, 1));
        assert_eq!(v.len(), 1);
    }
    let o = ScrapeOptions {
        metric_relabel: vec![RelabelConfig {
            regex: Regex::new("__name__").unwrap(),
            action: Action::LabelDrop,
            ..RelabelConfig::default()
        }]
        .into(),
        ..opts()
    };
    let (r, _) = run(&mut ScrapeCache::new(), "a 1\n", 1, &o);
    assert!(matches!(r, Err(ScrapeError::NoMetricName(_))));
}

#[test]
fn le_and_quantile_are_normalised_like_prometheus_3() {
    let body = "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"0.5e-3\"} 1\nh_bucket{le=\"+Inf\"} 1\n\
                # TYPE s summary\ns{quantile=\"0\"} 1\ns{quantile=\"0.99\"} 1\n\
                # TYPE g gauge\ng{le=\"1\"} 1\n";
    let (r, v) = run(&mut ScrapeCache::new(), body, 1, &opts());
    r.unwrap();
    let got: Vec<Option<&str>> = v
        .iter()
        .map(|(l, _, _)| l.get("le").or(l.get("quantile")))
        .collect();
    assert_eq!(
        got,
        [
            Some("1.0"),
            Some("0.0005"),
            Some("+Inf"),
            Some("0.0"),
            Some("0.99"),
            Some("1")
        ]
    );
    assert_eq!(format_openmetrics_float(1e6), "1e+06");
    assert_eq!(format_openmetrics_float(100000.0), "100000.0");
    assert_eq!(format_openmetrics_float(1e-5), "1e-05");
}

#[test]
fn metadata_is_recorded() {
    let mut c = ScrapeCache::new();
    let body = "# HELP a The a.\n# TYPE a counter\na 1\n";
    run(&mut c, body, 1, &opts()).0.unwrap();
    let m = &c.metadata()["a"];
    assert_eq!(m.metric_type, MetricType::Counter);
    assert_eq!(m.help, "The a.");
}

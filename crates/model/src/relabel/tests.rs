//! Relabel tests; cases and expected values follow Prometheus' `relabel_test.go`.

use super::*;
use crate::labels;

fn rule(action: Action) -> RelabelConfig {
    RelabelConfig {
        action,
        ..RelabelConfig::default()
    }
}

fn re(s: &str) -> Regex {
    Regex::new(s).unwrap()
}

#[test]
fn replace_with_groups() {
    let l = labels! {"a" => "foo", "b" => "bar", "c" => "baz"};
    let r = RelabelConfig {
        source_labels: vec!["a".into()],
        regex: re("f(.*)"),
        target_label: "d".into(),
        replacement: "ch${1}-ch${1}".into(),
        ..rule(Action::Replace)
    };
    let out = relabel(&l, &[r]).unwrap();
    assert_eq!(out.get("d"), Some("choo-choo"));
}

#[test]
fn replace_multiple_sources_and_named_groups() {
    let l = labels! {"a" => "foo", "b" => "bar", "c" => "baz"};
    let r = RelabelConfig {
        source_labels: vec!["a".into(), "b".into()],
        regex: re("f(?P<x>.*);(.*)r"),
        target_label: "a".into(),
        replacement: "b${x}$2".into(),
        ..rule(Action::Replace)
    };
    let out = relabel(&l, &[r]).unwrap();
    assert_eq!(out.get("a"), Some("booba"));
}

#[test]
fn replace_no_match_is_noop_and_empty_deletes() {
    let l = labels! {"a" => "foo"};
    let r = RelabelConfig {
        source_labels: vec!["a".into()],
        regex: re("f"),
        target_label: "b".into(),
        replacement: "bar".into(),
        ..rule(Action::Replace)
    };
    assert_eq!(relabel(&l, &[r]).unwrap(), l);
    let r = RelabelConfig {
        source_labels: vec!["a".into()],
        regex: re("(f).*"),
        target_label: "a".into(),
        replacement: "".into(),
        ..rule(Action::Replace)
    };
    // Deleting the only label leaves nothing: dropped.
    assert_eq!(relabel(&l, &[r]), None);
}

#[test]
fn replace_target_label_template() {
    let l = labels! {"a" => "some-name-value"};
    let r = RelabelConfig {
        source_labels: vec!["a".into()],
        regex: re("some-([^-]+)-([^,]+)"),
        target_label: "${1}".into(),
        replacement: "${2}".into(),
        ..rule(Action::Replace)
    };
    let out = relabel(&l, &[r]).unwrap();
    assert_eq!(out.get("name"), Some("value"));
    // `$1x` is the group named "1x", which does not exist: empty target, no-op.
    let r = RelabelConfig {
        source_labels: vec!["a".into()],
        regex: re("some-([^-]+)-([^,]+)"),
        target_label: "$1x".into(),
        ..rule(Action::Replace)
    };
    assert_eq!(relabel(&l, &[r]).unwrap(), l);
}

#[test]
fn go_expand_syntax() {
    let r = re("(a)(?P<n>b)");
    assert_eq!(
        r.expand_match("ab", "$1-$n-${2}-$$-$").unwrap(),
        "a-b-b-$-$"
    );
    assert_eq!(r.expand_match("ab", "${1").unwrap(), "${1");
    assert_eq!(r.expand_match("ab", "$01|$9").unwrap(), "|");
    assert_eq!(r.expand_match("xb", "$1"), None);
}

#[test]
fn regex_is_anchored_and_dotall() {
    let r = re("fo+");
    assert!(r.is_match("foo"));
    assert!(!r.is_match("afoo"));
    assert!(!r.is_match("foob"));
    assert!(re("a.b").is_match("a\nb"));
    assert!(re("a|b").is_match("b"));
    assert!(!re("a|b").is_match("ab"));
    assert!(Regex::new("(").is_err());
}

#[test]
fn keep_and_drop() {
    let l = labels! {"a" => "foo"};
    let keep = RelabelConfig {
        source_labels: vec!["a".into()],
        regex: re("f.*"),
        ..rule(Action::Keep)
    };
    assert!(relabel(&l, std::slice::from_ref(&keep)).is_some());
    let drop = RelabelConfig {
        action: Action::Drop,
        ..keep.clone()
    };
    assert!(relabel(&l, &[drop]).is_none());
    // Absent source labels join as empty; the default regex matches empty.
    let keep_missing = RelabelConfig {
        source_labels: vec!["nope".into()],
        regex: re("f.*"),
        ..rule(Action::Keep)
    };
    assert!(relabel(&l, &[keep_missing]).is_none());
}

#[test]
fn keepequal_dropequal() {
    let l = labels! {"__tmp_port" => "1234", "__port1" => "1234", "__port2" => "5678"};
    let mk = |action, target: &str| RelabelConfig {
        source_labels: vec!["__tmp_port".into()],
        target_label: target.into(),
        ..rule(action)
    };
    assert!(relabel(&l, &[mk(Action::KeepEqual, "__port1")]).is_some());
    assert!(relabel(&l, &[mk(Action::KeepEqual, "__port2")]).is_none());
    assert!(relabel(&l, &[mk(Action::DropEqual, "__port1")]).is_none());
    assert!(relabel(&l, &[mk(Action::DropEqual, "__port2")]).is_some());
}

#[test]
fn hashmod_matches_prometheus() {
    let l = labels! {"a" => "foo", "b" => "bar", "c" => "baz"};
    let r = RelabelConfig {
        source_labels: vec!["c".into()],
        target_label: "d".into(),
        modulus: 1000,
        ..rule(Action::HashMod)
    };
    // Prometheus relabel_test.go: "baz" mod 1000 is "976".
    assert_eq!(relabel(&l, &[r]).unwrap().get("d"), Some("976"));
    assert_eq!(hashmod("foo", 1000), 696);
    assert_eq!(hashmod("x", 0), 0);
}

#[test]
fn labelmap_labeldrop_labelkeep() {
    let l = labels! {"a" => "foo", "b1" => "bar", "b2" => "baz"};
    let map = RelabelConfig {
        regex: re("(b.*)"),
        replacement: "bar_${1}".into(),
        ..rule(Action::LabelMap)
    };
    let out = relabel(&l, &[map]).unwrap();
    assert_eq!(
        out,
        labels! {"a" => "foo", "b1" => "bar", "b2" => "baz", "bar_b1" => "bar", "bar_b2" => "baz"}
    );
    let meta =
        labels! {"__meta_my_bar" => "aaa", "__meta_my_baz" => "bbb", "__meta_other" => "ccc"};
    let map = RelabelConfig {
        regex: re("__meta_(my.*)"),
        replacement: "${1}".into(),
        ..rule(Action::LabelMap)
    };
    let out = relabel(&meta, &[map]).unwrap();
    assert_eq!(out.get("my_bar"), Some("aaa"));
    assert_eq!(out.get("my_baz"), Some("bbb"));
    assert_eq!(out.get("other"), None);

    let drop = RelabelConfig {
        regex: re("b.*"),
        ..rule(Action::LabelDrop)
    };
    assert_eq!(relabel(&l, &[drop]).unwrap(), labels! {"a" => "foo"});
    let keep = RelabelConfig {
        regex: re("b.*"),
        ..rule(Action::LabelKeep)
    };
    assert_eq!(
        relabel(&l, &[keep]).unwrap(),
        labels! {"b1" => "bar", "b2" => "baz"}
    );
}

#[test]
fn lowercase_uppercase() {
    let l = labels! {"foo" => "bAr123Foo", "bar" => "Ünïcödé"};
    let lower = RelabelConfig {
        source_labels: vec!["foo".into()],
        target_label: "foo_lower".into(),
        ..rule(Action::Lowercase)
    };
    let upper = RelabelConfig {
        source_labels: vec!["foo".into(), "bar".into()],
        target_label: "up".into(),
        ..rule(Action::Uppercase)
    };
    let out = relabel(&l, &[lower, upper]).unwrap();
    assert_eq!(out.get("foo_lower"), Some("bar123foo"));
    assert_eq!(out.get("up"), Some("BAR123FOO;ÜNÏCÖDÉ"));
}

#[test]
fn rules_apply_in_order() {
    let l = labels! {"__address__" => "h:1", "__meta_x" => "y"};
    let rules = [
        RelabelConfig {
            source_labels: vec!["__meta_x".into()],
            target_label: "x".into(),
            ..rule(Action::Replace)
        },
        RelabelConfig {
            source_labels: vec!["x".into()],
            regex: re("y"),
            ..rule(Action::Keep)
        },
    ];
    assert_eq!(relabel(&l, &rules).unwrap().get("x"), Some("y"));
    assert_eq!(relabel(&l, &[]).unwrap(), l);
}

#[test]
fn validation_messages() {
    let e = rule(Action::Replace).validate().unwrap_err();
    assert_eq!(
        e,
        "relabel configuration for replace action requires 'target_label' value"
    );
    let e = RelabelConfig {
        target_label: "x".into(),
        ..rule(Action::HashMod)
    }
    .validate()
    .unwrap_err();
    assert_eq!(
        e,
        "relabel configuration for hashmod requires non-zero modulus"
    );
    let e = RelabelConfig {
        target_label: "x".into(),
        replacement: "y".into(),
        ..rule(Action::Lowercase)
    }
    .validate()
    .unwrap_err();
    assert_eq!(e, "'replacement' can not be set for lowercase action");
    let e = RelabelConfig {
        target_label: "x".into(),
        regex: re("a"),
        ..rule(Action::KeepEqual)
    }
    .validate()
    .unwrap_err();
    assert!(
        e.contains("keepequal action requires only 'source_labels'"),
        "{e}"
    );
    let e = RelabelConfig {
        source_labels: vec!["a".into()],
        ..rule(Action::LabelDrop)
    }
    .validate()
    .unwrap_err();
    assert_eq!(
        e,
        "labeldrop action requires only 'regex', and no other fields"
    );
    assert!(rule(Action::Keep).validate().is_ok());
    assert!(RelabelConfig {
        target_label: "t".into(),
        ..rule(Action::Replace)
    }
    .validate()
    .is_ok());
}

#[test]
fn action_parsing_is_case_insensitive() {
    assert_eq!("HashMod".parse::<Action>().unwrap(), Action::HashMod);
    assert_eq!("LABELMAP".parse::<Action>().unwrap(), Action::LabelMap);
    assert!("nope".parse::<Action>().is_err());
    assert_eq!(
        "".parse::<Action>().unwrap_err(),
        "relabel action cannot be empty"
    );
}

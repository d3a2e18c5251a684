//! Relabeling (mirrors Prometheus `model/relabel`): rewriting a label set by a list
//! of rules, as used for targets (`relabel_configs`), scraped samples
//! (`metric_relabel_configs`), alerts and remote write.
//!
//! Semantics follow Prometheus 3.x:
//! - regexes are fully anchored, compiled as `^(?s:<regex>)$`;
//! - source label values are joined with `separator` (absent labels count as empty);
//! - `replace` does nothing when the regex does not match, and an empty result
//!   deletes the target label; `target_label` and `replacement` are templates with
//!   Go `regexp.Expand` syntax (`$1`, `${1}`, `$name`, `${name}`, `$$`);
//! - `hashmod` is the big-endian `u64` of the **last** 8 bytes of the MD5 of the
//!   joined values, modulo `modulus` (Prometheus keeps the last 8 bytes "to give the
//!   same result as earlier versions");
//! - label names are checked with the UTF-8 validation scheme of 3.x: any non-empty
//!   name is valid.
//!
//! Key items: [`RelabelConfig`], [`Action`], [`Regex`], [`relabel`].

use std::fmt;
use std::str::FromStr;

use md5::{Digest, Md5};

use crate::{Label, Labels};

/// The default regex, `(.*)`.
pub const DEFAULT_REGEX: &str = "(.*)";
/// The default separator, `;`.
pub const DEFAULT_SEPARATOR: &str = ";";
/// The default replacement, `$1`.
pub const DEFAULT_REPLACEMENT: &str = "$1";

/// What a relabel rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Action {
    /// Sets `target_label` to the expanded `replacement` if the regex matches.
    #[default]
    Replace,
    /// Keeps the set only if the regex matches the joined source values.
    Keep,
    /// Drops the set if the regex matches the joined source values.
    Drop,
    /// Keeps the set only if the joined source values equal `target_label`'s value.
    KeepEqual,
    /// Drops the set if the joined source values equal `target_label`'s value.
    DropEqual,
    /// Sets `target_label` to a hash of the joined source values modulo `modulus`.
    HashMod,
    /// Copies labels whose name matches the regex to the name `replacement`.
    LabelMap,
    /// Removes labels whose name matches the regex.
    LabelDrop,
    /// Removes labels whose name does not match the regex.
    LabelKeep,
    /// Sets `target_label` to the lower-cased joined source values.
    Lowercase,
    /// Sets `target_label` to the upper-cased joined source values.
    Uppercase,
}

impl Action {
    /// The configuration spelling (`replace`, `hashmod`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Replace => "replace",
            Action::Keep => "keep",
            Action::Drop => "drop",
            Action::KeepEqual => "keepequal",
            Action::DropEqual => "dropequal",
            Action::HashMod => "hashmod",
            Action::LabelMap => "labelmap",
            Action::LabelDrop => "labeldrop",
            Action::LabelKeep => "labelkeep",
            Action::Lowercase => "lowercase",
            Action::Uppercase => "uppercase",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = String;

    /// Parses an action name, case-insensitively as Prometheus does.
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "replace" => Action::Replace,
            "keep" => Action::Keep,
            "drop" => Action::Drop,
            "keepequal" => Action::KeepEqual,
            "dropequal" => Action::DropEqual,
            "hashmod" => Action::HashMod,
            "labelmap" => Action::LabelMap,
            "labeldrop" => Action::LabelDrop,
            "labelkeep" => Action::LabelKeep,
            "lowercase" => Action::Lowercase,
            "uppercase" => Action::Uppercase,
            "" => return Err("relabel action cannot be empty".into()),
            _ => return Err(format!("unknown relabel action {s:?}")),
        })
    }
}

/// An anchored relabel regex. Compares and displays as written.
#[derive(Clone)]
pub struct Regex {
    source: String,
    re: regex::Regex,
}

impl Regex {
    /// Compiles `source` as `^(?s:<source>)$`.
    pub fn new(source: &str) -> Result<Self, String> {
        let re = regex::Regex::new(&format!("^(?s:{source})$"))
            .map_err(|e| format!("invalid regex {source:?}: {e}"))?;
        Ok(Self {
            source: source.to_owned(),
            re,
        })
    }

    /// The regex as written, without the anchors.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the whole of `s` matches.
    pub fn is_match(&self, s: &str) -> bool {
        self.re.is_match(s)
    }

    /// `template` expanded with the captures of matching `s`, or `None` if `s`
    /// does not match.
    pub fn expand_match(&self, s: &str, template: &str) -> Option<String> {
        let caps = self.re.captures(s)?;
        let mut out = String::new();
        expand(&self.re, &caps, template, &mut out);
        Some(out)
    }
}

impl Default for Regex {
    fn default() -> Self {
        Self {
            source: DEFAULT_REGEX.to_owned(),
            re: regex::Regex::new("^(?s:(.*))$").expect("the default regex compiles"),
        }
    }
}

impl PartialEq for Regex {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Regex {}

impl fmt::Debug for Regex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Regex({:?})", self.source)
    }
}

/// Expands `template` like Go's `regexp.Expand`: `$$` is a literal `$`; `$name` and
/// `${name}` take the longest run of letters, digits and `_`; a name that is all
/// digits is a group number; unknown or unmatched groups expand to nothing; a `$`
/// not followed by a valid reference is kept as written.
fn expand(re: &regex::Regex, caps: &regex::Captures<'_>, template: &str, out: &mut String) {
    let mut rest = template;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            out.push('$');
            rest = r;
            continue;
        }
        let Some((name, after)) = extract_name(rest) else {
            out.push('$');
            continue;
        };
        rest = after;
        let num = parse_group_number(name);
        let m = match num {
            Some(n) => caps.get(n),
            None => re
                .capture_names()
                .position(|n| n == Some(name))
                .and_then(|i| caps.get(i)),
        };
        if let Some(m) = m {
            out.push_str(m.as_str());
        }
    }
    out.push_str(rest);
}

/// The reference name after a `$` and the rest of the template.
fn extract_name(s: &str) -> Option<(&str, &str)> {
    let (brace, body) = match s.strip_prefix('{') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let end = body
        .char_indices()
        .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
        .map_or(body.len(), |(i, _)| i);
    if end == 0 {
        return None;
    }
    let name = &body[..end];
    let rest = &body[end..];
    if brace {
        let rest = rest.strip_prefix('}')?;
        Some((name, rest))
    } else {
        Some((name, rest))
    }
}

/// A group number as Go reads it: ASCII digits, no leading zero, below 1e8.
fn parse_group_number(name: &str) -> Option<usize> {
    if !name.bytes().all(|b| b.is_ascii_digit()) || (name.len() > 1 && name.starts_with('0')) {
        return None;
    }
    let n: usize = name.parse().ok()?;
    (n < 100_000_000).then_some(n)
}

/// One relabel rule, validated by [`RelabelConfig::validate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelabelConfig {
    /// Labels whose values are joined to form the input.
    pub source_labels: Vec<String>,
    /// Joins the source values (default `;`).
    pub separator: String,
    /// Matched against the joined values (or label names for the label* actions).
    pub regex: Regex,
    /// Modulus for `hashmod`.
    pub modulus: u64,
    /// The label written by `replace`, `hashmod`, `lowercase`, `uppercase`, or
    /// compared by `keepequal`/`dropequal`.
    pub target_label: String,
    /// The template written by `replace` and `labelmap` (default `$1`).
    pub replacement: String,
    /// What to do.
    pub action: Action,
}

impl Default for RelabelConfig {
    fn default() -> Self {
        Self {
            source_labels: Vec::new(),
            separator: DEFAULT_SEPARATOR.to_owned(),
            regex: Regex::default(),
            modulus: 0,
            target_label: String::new(),
            replacement: DEFAULT_REPLACEMENT.to_owned(),
            action: Action::Replace,
        }
    }
}

impl RelabelConfig {
    /// Checks the rule like Prometheus' `relabel.Config.Validate`; the messages
    /// are Prometheus'.
    pub fn validate(&self) -> Result<(), String> {
        let a = self.action;
        if a == Action::HashMod && self.modulus == 0 {
            return Err("relabel configuration for hashmod requires non-zero modulus".into());
        }
        let needs_target = matches!(
            a,
            Action::Replace
                | Action::HashMod
                | Action::Lowercase
                | Action::Uppercase
                | Action::KeepEqual
                | Action::DropEqual
        );
        if needs_target && self.target_label.is_empty() {
            return Err(format!(
                "relabel configuration for {a} action requires 'target_label' value"
            ));
        }
        if matches!(
            a,
            Action::Lowercase | Action::Uppercase | Action::KeepEqual | Action::DropEqual
        ) && self.replacement != DEFAULT_REPLACEMENT
        {
            return Err(format!("'replacement' can not be set for {a} action"));
        }
        if a == Action::LabelMap && self.replacement.is_empty() {
            return Err(format!(
                "{:?} is invalid 'replacement' for {a} action",
                self.replacement
            ));
        }
        if matches!(a, Action::KeepEqual | Action::DropEqual)
            && (self.regex.as_str() != DEFAULT_REGEX
                || self.modulus != 0
                || self.separator != DEFAULT_SEPARATOR
                || self.replacement != DEFAULT_REPLACEMENT)
        {
            return Err(format!(
                "{a} action requires only 'source_labels' and `target_label`, and no other fields"
            ));
        }
        if matches!(a, Action::LabelDrop | Action::LabelKeep)
            && (!self.source_labels.is_empty()
                || !self.target_label.is_empty()
                || self.modulus != 0
                || self.separator != DEFAULT_SEPARATOR
                || self.replacement != DEFAULT_REPLACEMENT)
        {
            return Err(format!(
                "{a} action requires only 'regex', and no other fields"
            ));
        }
        Ok(())
    }
}

/// Applies `rules` in order to `labels`. `None` means the set was dropped (by
/// `keep`, `drop`, `keepequal`, `dropequal`, or because nothing is left).
pub fn relabel(labels: &Labels, rules: &[RelabelConfig]) -> Option<Labels> {
    if rules.is_empty() {
        return Some(labels.clone());
    }
    let mut b: Vec<Label> = labels.as_slice().to_vec();
    let mut joined = String::new();
    for rule in rules {
        if !apply(&mut b, rule, &mut joined) {
            return None;
        }
    }
    let out = Labels::from_vec(b);
    (!out.is_empty()).then_some(out)
}

fn get<'a>(b: &'a [Label], name: &str) -> &'a str {
    b.iter()
        .find(|l| l.name == name)
        .map_or("", |l| l.value.as_str())
}

fn set(b: &mut Vec<Label>, name: &str, value: String) {
    if value.is_empty() {
        b.retain(|l| l.name != name);
        return;
    }
    match b.iter_mut().find(|l| l.name == name) {
        Some(l) => l.value = value,
        None => b.push(Label {
            name: name.to_owned(),
            value,
        }),
    }
}

/// Applies one rule; `false` drops the set.
fn apply(b: &mut Vec<Label>, rule: &RelabelConfig, joined: &mut String) -> bool {
    joined.clear();
    for (i, name) in rule.source_labels.iter().enumerate() {
        if i > 0 {
            joined.push_str(&rule.separator);
        }
        joined.push_str(get(b, name));
    }
    let val = joined.as_str();
    match rule.action {
        Action::Drop => return !rule.regex.is_match(val),
        Action::Keep => return rule.regex.is_match(val),
        Action::DropEqual => return get(b, &rule.target_label) != val,
        Action::KeepEqual => return get(b, &rule.target_label) == val,
        Action::Replace => {
            let Some(caps) = rule.regex.re.captures(val) else {
                return true;
            };
            let mut target = String::new();
            expand(&rule.regex.re, &caps, &rule.target_label, &mut target);
            if target.is_empty() {
                return true;
            }
            let mut res = String::new();
            expand(&rule.regex.re, &caps, &rule.replacement, &mut res);
            set(b, &target, res);
        }
        Action::Lowercase => {
            let v = val.to_lowercase();
            set(b, &rule.target_label, v);
        }
        Action::Uppercase => {
            let v = val.to_uppercase();
            set(b, &rule.target_label, v);
        }
        Action::HashMod => {
            let v = hashmod(val, rule.modulus).to_string();
            set(b, &rule.target_label, v);
        }
        Action::LabelMap => {
            let snapshot = b.clone();
            for l in &snapshot {
                if let Some(name) = rule.regex.expand_match(&l.name, &rule.replacement) {
                    set(b, &name, l.value.clone());
                }
            }
        }
        Action::LabelDrop => b.retain(|l| !rule.regex.is_match(&l.name)),
        Action::LabelKeep => b.retain(|l| rule.regex.is_match(&l.name)),
    }
    true
}

/// Prometheus' `hashmod`: the big-endian `u64` of the last 8 bytes of
/// `MD5(value)`, modulo `modulus` (0 when `modulus` is 0).
pub fn hashmod(value: &str, modulus: u64) -> u64 {
    if modulus == 0 {
        return 0;
    }
    let sum = Md5::digest(value.as_bytes());
    let mut last = [0u8; 8];
    last.copy_from_slice(&sum[8..16]);
    u64::from_be_bytes(last) % modulus
}

#[cfg(test)]
mod tests;

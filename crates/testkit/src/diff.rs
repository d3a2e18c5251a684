//! Comparing large outputs with a readable failure message.

/// Lines of context shown around the first difference.
const CONTEXT: usize = 3;

/// Asserts that two outputs are byte-for-byte equal.
///
/// Made for dumps of hundreds of thousands of lines, where `assert_eq!` would
/// print megabytes: on a mismatch it reports both line counts, the first
/// differing line (1-based) with a few lines of context from each side, and
/// whether one output is a prefix of the other. Non-UTF-8 bytes are shown
/// lossily but still compared exactly.
///
/// # Panics
///
/// If `left != right`.
#[track_caller]
pub fn assert_same_text(
    left_name: &str,
    left: impl AsRef<[u8]>,
    right_name: &str,
    right: impl AsRef<[u8]>,
) {
    let (left, right) = (left.as_ref(), right.as_ref());
    if left == right {
        return;
    }
    let l: Vec<&[u8]> = left.split(|&b| b == b'\n').collect();
    let r: Vec<&[u8]> = right.split(|&b| b == b'\n').collect();
    let first = l
        .iter()
        .zip(&r)
        .position(|(a, b)| a != b)
        .unwrap_or(l.len().min(r.len()));
    let show = |lines: &[&[u8]]| -> String {
        let from = first.saturating_sub(CONTEXT);
        let to = (first + CONTEXT + 1).min(lines.len());
        let mut s = String::new();
        for (i, line) in lines.iter().enumerate().take(to).skip(from) {
            let mark = if i == first { ">" } else { " " };
            s.push_str(&format!(
                "{mark}{:>8} | {}\n",
                i + 1,
                String::from_utf8_lossy(line)
            ));
        }
        if from >= to {
            s.push_str("  (no more lines)\n");
        }
        s
    };
    // `split` yields one empty piece after a trailing newline; do not count it.
    let count = |lines: &[&[u8]]| lines.len() - usize::from(lines.last() == Some(&&b""[..]));
    panic!(
        "{left_name} and {right_name} differ ({} vs {} lines, {} vs {} bytes); first difference \
         at line {}{}\n--- {left_name} ---\n{}--- {right_name} ---\n{}",
        count(&l),
        count(&r),
        left.len(),
        right.len(),
        first + 1,
        if left.starts_with(right) || right.starts_with(left) {
            " (one is a prefix of the other)"
        } else {
            ""
        },
        show(&l),
        show(&r),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_pass() {
        assert_same_text("a", "x\ny\n", "b", "x\ny\n");
    }

    #[test]
    fn reports_first_difference() {
        let err = std::panic::catch_unwind(|| {
            assert_same_text("mine", "1\n2\n3\n4\n", "theirs", "1\n2\nthree\n4\n")
        })
        .unwrap_err();
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(msg.contains("first difference at line 3"), "{msg}");
        assert!(msg.contains(">       3 | three"), "{msg}");
        assert!(msg.contains("4 vs 4 lines"), "{msg}");
    }

    #[test]
    fn reports_prefix() {
        let err =
            std::panic::catch_unwind(|| assert_same_text("a", "1\n2\n", "b", "1\n")).unwrap_err();
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(msg.contains("prefix"), "{msg}");
        assert!(msg.contains("2 vs 1 lines"), "{msg}");
    }
}

//! Float samples and Prometheus' special NaN values.

/// Bit pattern of the staleness marker NaN (`value.StaleNaN`).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;
/// Bit pattern of the NaN Prometheus writes for "normal" NaN values.
pub const NORMAL_NAN_BITS: u64 = 0x7ff8_0000_0000_0001;

/// Whether `v` is the staleness marker (compares bits, not value).
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// One float sample: a millisecond timestamp and a value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// Milliseconds since the Unix epoch.
    pub t: i64,
    /// The value; NaN bit patterns are preserved.
    pub v: f64,
}

impl Sample {
    /// A sample.
    pub fn new(t: i64, v: f64) -> Self {
        Self { t, v }
    }
}

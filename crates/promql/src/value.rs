//! Query results.

use strata_model::{Labels, Sample};

/// One element of an instant vector.
#[derive(Clone, Debug, PartialEq)]
pub struct VectorSample {
    /// The series labels (metric name dropped where PromQL drops it).
    pub metric: Labels,
    /// Evaluation timestamp, ms.
    pub t: i64,
    /// The value.
    pub v: f64,
}

/// One series of a range vector / matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// The series labels.
    pub metric: Labels,
    /// Samples in time order.
    pub samples: Vec<Sample>,
}

/// A PromQL value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A scalar at a time.
    Scalar {
        /// Time, ms.
        t: i64,
        /// Value.
        v: f64,
    },
    /// A string at a time.
    String {
        /// Time, ms.
        t: i64,
        /// Value.
        s: String,
    },
    /// An instant vector, ordered as Prometheus orders it (sorted by labels unless
    /// the query orders it: `sort`, `topk`…).
    Vector(Vec<VectorSample>),
    /// A range vector or range-query result, series sorted by labels.
    Matrix(Vec<Series>),
}

impl Value {
    /// Prometheus' `resultType`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar { .. } => "scalar",
            Value::String { .. } => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }
}

/// A value with the annotations gathered while computing it.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryResult {
    /// The result.
    pub value: Value,
    /// Warnings (e.g. partial data, PromQL warnings).
    pub warnings: Vec<String>,
    /// Infos (PromQL info annotations).
    pub infos: Vec<String>,
}

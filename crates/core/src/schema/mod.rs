//! The records tcpulse writes, as types: interval records and flow records, with the event
//! counters and latency histograms they carry. Every writer and every reader goes through
//! these types (docs/schema.md): a field a reader expects and a record lacks is an error,
//! never a silent 0. [`json_schema`] is the JSON Schema of a record line, generated from the
//! types (checked in as `docs/schema/record.schema.json`).

pub mod counters;
pub mod flow;
pub mod hist;
pub mod interval;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize, Serializer};

pub use flow::FlowRecord;
pub use interval::IntervalRecord;

/// The version of the record layout, in every record as `schema_version`. It changes when a
/// field is added, removed or changes meaning; readers take records of this version only.
pub const SCHEMA_VERSION: u32 = 3;

/// One line of tcpulse's output, whichever record it is; its `type` says which.
#[derive(Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[serde(tag = "type")]
#[expect(
    clippy::large_enum_variant,
    reason = "flow records are most of the records and stay inline; the rare, large interval \
              record is boxed"
)]
pub enum Record {
    #[serde(rename = "interval")]
    Interval(Box<IntervalRecord>),
    #[serde(rename = "flow")]
    Flow(FlowRecord),
}

/// Each record type writes its own `type`, so a record is written as the one it holds.
impl Serialize for Record {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Record::Interval(r) => r.serialize(s),
            Record::Flow(r) => r.serialize(s),
        }
    }
}

/// Why a line is not a record this version reads.
#[derive(Debug)]
pub enum ReadError {
    /// Not JSON, not an object, an unknown `type`, or a field missing or of the wrong type.
    Malformed(serde_json::Error),
    /// A record of another layout version.
    Version(u32),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Malformed(e) => write!(f, "not a tcpulse record: {e}"),
            ReadError::Version(v) => write!(
                f,
                "a record of schema version {v}; this tcpulse reads version {SCHEMA_VERSION}"
            ),
        }
    }
}

impl Record {
    /// Reads one line of tcpulse's output.
    ///
    /// # Errors
    /// A line that is not a record of [`SCHEMA_VERSION`].
    pub fn from_line(line: &str) -> Result<Record, ReadError> {
        let record: Record = serde_json::from_str(line).map_err(|e| {
            // A record of another version may not parse at all: say which version it is.
            match serde_json::from_str::<VersionOnly>(line) {
                Ok(v) if v.schema_version != SCHEMA_VERSION => ReadError::Version(v.schema_version),
                _ => ReadError::Malformed(e),
            }
        })?;
        match record.schema_version() {
            SCHEMA_VERSION => Ok(record),
            other => Err(ReadError::Version(other)),
        }
    }

    pub fn schema_version(&self) -> u32 {
        match self {
            Record::Interval(r) => r.schema_version,
            Record::Flow(r) => r.schema_version,
        }
    }
}

#[derive(Deserialize)]
struct VersionOnly {
    schema_version: u32,
}

/// The JSON Schema (draft 2020-12) of one record line.
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(Record);
    serde_json::to_value(&schema).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checked-in schema is the one the types give; `TCPULSE_REGENERATE=1 cargo test -p
    /// tcpulse-core schema` writes it anew.
    #[test]
    fn the_shipped_json_schema_is_the_types_schema() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../docs/schema/record.schema.json");
        let generated = serde_json::to_string_pretty(&json_schema()).unwrap() + "\n";
        if std::env::var_os("TCPULSE_REGENERATE").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let shipped = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            shipped == generated,
            "docs/schema/record.schema.json differs from the types: regenerate it"
        );
    }

    #[test]
    fn lines_of_another_version_or_shape_are_refused() {
        let mut record = IntervalRecord::new(0, 1, "x".into());
        let line = serde_json::to_string(&record).unwrap();
        assert!(matches!(Record::from_line(&line), Ok(Record::Interval(_))));
        record.schema_version = SCHEMA_VERSION + 1;
        let line = serde_json::to_string(&record).unwrap();
        assert!(
            matches!(Record::from_line(&line), Err(ReadError::Version(v)) if v == SCHEMA_VERSION + 1)
        );
        let missing = line.replace(",\"servers_omitted\":0", "");
        let missing = missing.replace(
            &format!("\"schema_version\":{}", SCHEMA_VERSION + 1),
            &format!("\"schema_version\":{SCHEMA_VERSION}"),
        );
        assert!(matches!(
            Record::from_line(&missing),
            Err(ReadError::Malformed(_))
        ));
        let no_counter = serde_json::to_string(&IntervalRecord::new(0, 1, "x".into()))
            .unwrap()
            .replacen("\"syn\":0,", "", 1);
        assert!(matches!(
            Record::from_line(&no_counter),
            Err(ReadError::Malformed(_))
        ));
    }
}

//! Named event counters, kept as one flat array so merging workers and servers is a loop and
//! every counter reaches the JSON output under one stable name.

use std::borrow::Cow;
use std::fmt;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};

macro_rules! counters {
    ($($name:ident),* $(,)?) => {
        /// One counter per TCP event tcpulse reports, per interval.
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(usize)]
        pub enum Counter { $($name),* }

        impl Counter {
            pub const ALL: &'static [Counter] = &[$(Counter::$name),*];
            pub fn name(self) -> &'static str {
                match self { $(Counter::$name => stringify!($name)),* }
            }

            /// The counter of this name, as records write it.
            pub fn from_name(name: &str) -> Option<Counter> {
                match name { $(stringify!($name) => Some(Counter::$name),)* _ => None }
            }
        }
    };
}

counters!(
    packets,
    payload_bytes,
    syn,
    synack,
    handshakes,
    syn_retransmits,
    synack_retransmits,
    rst,
    rst_to_syn,
    fin,
    unanswered_syn,
    data_segments,
    retransmits,
    data_retransmits,
    retransmitted_bytes,
    fast_retransmits,
    spurious_retransmits,
    out_of_order,
    dup_acks,
    lost_segments,
    acked_unseen,
    keep_alives,
    zero_window,
    zero_window_probes,
    new_flows,
    closed_flows,
    half_closed_stalls,
    handshake_ambiguous,
);

const N: usize = Counter::ALL.len();

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counters(pub [u64; N]);

impl Default for Counters {
    fn default() -> Self {
        Counters([0; N])
    }
}

impl Counters {
    #[inline]
    pub fn add(&mut self, c: Counter, n: u64) {
        self.0[c as usize] += n;
    }

    #[inline]
    pub fn inc(&mut self, c: Counter) {
        self.0[c as usize] += 1;
    }

    #[inline]
    pub fn get(&self, c: Counter) -> u64 {
        self.0[c as usize]
    }

    /// Adds `other`; saturating, since merged counters may come from records read back.
    pub fn merge(&mut self, other: &Counters) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a = a.saturating_add(*b);
        }
    }

    pub fn is_zero(&self) -> bool {
        self.0.iter().all(|&v| v == 0)
    }

    /// Retransmitted data segments per data segment, 0 when no data was sent.
    pub fn retransmit_ratio(&self) -> f64 {
        ratio(
            self.get(Counter::data_retransmits),
            self.get(Counter::data_segments),
        )
    }

    /// Backlog pressure in 0..=1: the share of connection attempts that show the server failing
    /// to take them in — SYNs resent or never answered, SYN/ACKs resent (the final ACK lost or
    /// dropped by a full accept queue) — over all SYN-side events. 0 is a healthy listener, 1
    /// one that answers nothing. RST answers to SYN are a closed port, not pressure.
    pub fn backlog_pressure(&self) -> f64 {
        // Saturating: counters may come from records read back.
        let trouble = self
            .get(Counter::syn_retransmits)
            .saturating_add(self.get(Counter::synack_retransmits))
            .saturating_add(self.get(Counter::unanswered_syn));
        let attempts = self
            .get(Counter::syn)
            .saturating_add(self.get(Counter::synack_retransmits));
        ratio(trouble, attempts.max(trouble)).min(1.0)
    }
}

fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

impl Serialize for Counters {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(N))?;
        for &c in Counter::ALL {
            map.serialize_entry(c.name(), &self.get(c))?;
        }
        map.end()
    }
}

/// Records carry every counter by name, flattened into the object they belong to; reading one
/// back needs every counter (a missing one is an error, never a 0). Other keys belong to the
/// enclosing object and are passed over.
impl<'de> Deserialize<'de> for Counters {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Named;
        impl<'de> Visitor<'de> for Named {
            type Value = Counters;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("every tcpulse counter by name")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Counters, A::Error> {
                let mut c = Counters::default();
                let mut seen = [false; N];
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    match Counter::from_name(&key) {
                        Some(k) => {
                            c.0[k as usize] = map.next_value()?;
                            seen[k as usize] = true;
                        }
                        None => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                match Counter::ALL.iter().find(|k| !seen[**k as usize]) {
                    Some(k) => Err(de::Error::missing_field(k.name())),
                    None => Ok(c),
                }
            }
        }
        d.deserialize_map(Named)
    }
}

impl JsonSchema for Counters {
    fn schema_name() -> Cow<'static, str> {
        "Counters".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let properties: serde_json::Map<String, serde_json::Value> = Counter::ALL
            .iter()
            .map(|c| {
                let schema =
                    serde_json::json!({"type": "integer", "format": "uint64", "minimum": 0});
                (c.name().to_string(), schema)
            })
            .collect();
        let required: Vec<&str> = Counter::ALL.iter().map(|c| c.name()).collect();
        json_schema!({
            "type": "object",
            "properties": properties,
            "required": required,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pressure_is_zero_for_clean_handshakes_and_one_for_a_dead_listener() {
        let mut c = Counters::default();
        c.add(Counter::syn, 100);
        assert_eq!(c.backlog_pressure(), 0.0);
        // Dead listener: every client sends 1 SYN + 5 retransmissions and gives up.
        let mut dead = Counters::default();
        dead.add(Counter::syn, 60);
        dead.add(Counter::syn_retransmits, 50);
        dead.add(Counter::unanswered_syn, 10);
        assert_eq!(dead.backlog_pressure(), 1.0);
    }

    #[test]
    fn serializes_every_counter_by_name() {
        let mut c = Counters::default();
        c.inc(Counter::rst_to_syn);
        let json = serde_json::to_value(c).unwrap();
        assert_eq!(json["rst_to_syn"], 1);
        assert_eq!(json.as_object().unwrap().len(), Counter::ALL.len());
    }
}

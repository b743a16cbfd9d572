//! What a rule emits: an [`Alert`], with its deterministic id and its JSON shape.

use super::model::RuleSpec;

/// A record captured by a pattern match.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchedEvent {
    pub time: i64,
    /// The step's definition name.
    pub step: String,
    pub values: Vec<(String, Option<f64>)>,
}

/// What a rule emits: a condition turning true, or a pattern match.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub rule: String,
    /// The key's fields and values (`None` for null).
    pub key: Vec<(String, Option<String>)>,
    /// For a condition, the evaluation instant (the windows' exclusive end); for a pattern,
    /// the time of the match's last record. Epoch ms.
    pub time: i64,
    /// A condition's term and field values by their text.
    pub values: Vec<(String, Option<f64>)>,
    /// A pattern's matched records.
    pub events: Vec<MatchedEvent>,
}

pub(crate) fn key_pairs(spec: &RuleSpec, key: &str) -> Vec<(String, Option<String>)> {
    spec.key_names
        .iter()
        .cloned()
        .zip(crate::key::parts(key).map(|p| p.map(std::borrow::Cow::into_owned)))
        .collect()
}

impl Alert {
    /// A deterministic id over the rule, the key, the time and the matched records: the
    /// same alert of the same input always has the same id (see [`crate::ids`]).
    ///
    /// ```
    /// use eventide_engine::rules::Alert;
    /// let a = Alert { rule: "r".into(), key: vec![("k".into(), Some("a".into()))], time: 10, values: vec![], events: vec![] };
    /// let mut b = a.clone();
    /// assert_eq!(a.id(), b.id());
    /// b.time = 11;
    /// assert_ne!(a.id(), b.id());
    /// ```
    pub fn id(&self) -> String {
        crate::ids::alert_id(
            &self.rule,
            self.key.iter().map(|(_, v)| v.as_deref()),
            self.time,
            self.events.iter().map(|e| e.time),
        )
    }

    /// The alert as one JSON object: `id`, `rule`, `key` (field → value), `time`, `values`
    /// (term → value, `null` when undefined) and, for a pattern, `events`.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::{json, Map, Value as J};
        let key: Map<String, J> = self
            .key
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().map_or(J::Null, J::String)))
            .collect();
        let values: Map<String, J> = self
            .values
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        let mut o = json!({
            "id": self.id(),
            "rule": self.rule,
            "key": key,
            "time": self.time,
            "values": values,
        });
        if !self.events.is_empty() {
            o["events"] = J::Array(
                self.events
                    .iter()
                    .map(|e| {
                        let vals: Map<String, J> = e
                            .values
                            .iter()
                            .map(|(k, v)| (k.clone(), json!(v)))
                            .collect();
                        json!({"time": e.time, "step": e.step, "values": vals})
                    })
                    .collect(),
            );
        }
        o
    }
}

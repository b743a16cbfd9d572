//! The autoscaler's memory: the times of its `UpdateShardCount` calls and its last
//! decision, kept in the control table so that AWS's limit of 10 calls per rolling 24 h and
//! the cooldowns survive restarts and Lambda cold starts.
//!
//! One item per (pipeline, stream) in the pipeline's partition of the control table:
//! `pk` = `<pipeline>`, `sk` = `autoscale#<stream>`, with `calls` (L of N: call times,
//! epoch ms, oldest first), `ver` (N: +1 on every write, for optimistic concurrency),
//! `last` (S: the last decision, readable) and `at` (N: when it was made, epoch ms).
//! The shard rows (`sk` = `shard#…`) are not affected: they are read with
//! `begins_with(sk, "shard#")`.
//!
//! Writes are conditional on `ver`, so two autoscaler passes that run at once (overlapping
//! schedules) cannot both record a call: the loser gets [`AwsError::Conflict`] and must not
//! call `UpdateShardCount`.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use crate::sdk::dynamodb::{get_n, get_s};
use crate::sdk::is_condition_failed;
use crate::AwsError;

/// What the log holds for one stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScaleRecord {
    /// Times of the `UpdateShardCount` calls, epoch ms, oldest first.
    pub calls_ms: Vec<i64>,
    /// The version read; pass it back to [`ScaleLog::save`]. 0 when there is no item yet.
    pub version: u64,
    /// The last decision, as text.
    pub last_decision: Option<String>,
    /// When the last decision was made, epoch ms.
    pub last_decision_ms: Option<i64>,
}

/// Encodes call times as a DynamoDB list of numbers, oldest first.
///
/// ```
/// use eventide_aws::scale_log::{decode_calls, encode_calls};
/// let v = encode_calls(&[30, 10, 20]);
/// assert_eq!(decode_calls(&v, "calls").unwrap(), vec![10, 20, 30]);
/// ```
pub fn encode_calls(calls_ms: &[i64]) -> AttributeValue {
    let mut sorted = calls_ms.to_vec();
    sorted.sort_unstable();
    AttributeValue::L(
        sorted
            .into_iter()
            .map(|t| AttributeValue::N(t.to_string()))
            .collect(),
    )
}

/// Decodes what [`encode_calls`] wrote (sorted, oldest first); `what` names the attribute
/// in errors.
pub fn decode_calls(value: &AttributeValue, what: &str) -> Result<Vec<i64>, AwsError> {
    let list = value.as_l().map_err(|_| AwsError::Corrupt {
        what: what.to_string(),
        message: "not a list".into(),
    })?;
    let mut out = Vec::with_capacity(list.len());
    for (i, v) in list.iter().enumerate() {
        let n = v.as_n().map_err(|_| AwsError::Corrupt {
            what: format!("{what}[{i}]"),
            message: "not a number".into(),
        })?;
        out.push(n.parse::<i64>().map_err(|e| AwsError::Corrupt {
            what: format!("{what}[{i}] = {n}"),
            message: e.to_string(),
        })?);
    }
    out.sort_unstable();
    Ok(out)
}

/// The autoscaler log of one stream of one pipeline.
///
/// ```no_run
/// # async fn demo(clients: eventide_aws::config::Clients) -> Result<(), eventide_aws::AwsError> {
/// use eventide_aws::scale_log::ScaleLog;
/// let log = ScaleLog::new(clients.dynamodb.clone(), "demo-control", "q1", "events");
/// let seen = log.load().await?;
/// let mut calls = seen.calls_ms.clone();
/// calls.push(1_700_000_000_000);
/// // Fails with a conflict if another pass wrote in between: then do not call AWS.
/// log.save(seen.version, &calls, "scale 1 -> 2", 1_700_000_000_000).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct ScaleLog {
    client: Client,
    table: String,
    pipeline: String,
    stream: String,
}

impl ScaleLog {
    /// The log of `stream` in the partition of `pipeline` of the control table `table`.
    pub fn new(
        client: Client,
        table: impl Into<String>,
        pipeline: impl Into<String>,
        stream: impl Into<String>,
    ) -> Self {
        ScaleLog {
            client,
            table: table.into(),
            pipeline: pipeline.into(),
            stream: stream.into(),
        }
    }

    fn key(&self) -> HashMap<String, AttributeValue> {
        HashMap::from([
            ("pk".to_string(), AttributeValue::S(self.pipeline.clone())),
            (
                "sk".to_string(),
                AttributeValue::S(format!("autoscale#{}", self.stream)),
            ),
        ])
    }

    fn what(&self) -> String {
        format!(
            "control table {} item {}/autoscale#{}",
            self.table, self.pipeline, self.stream
        )
    }

    /// Reads the log (strongly consistent); an empty record when there is none yet.
    ///
    /// # Errors
    /// [`AwsError::Service`] when GetItem fails, [`AwsError::Corrupt`] for an item that
    /// cannot be read.
    pub async fn load(&self) -> Result<ScaleRecord, AwsError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(self.key()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsError::service(format!("GetItem {}", self.what()), e))?;
        let Some(item) = out.item() else {
            return Ok(ScaleRecord::default());
        };
        let what = self.what();
        let calls_ms = match item.get("calls") {
            Some(v) => decode_calls(v, &format!("{what}: attribute calls"))?,
            None => Vec::new(),
        };
        Ok(ScaleRecord {
            calls_ms,
            version: get_n(item, "ver", &what)?.unwrap_or(0),
            last_decision: get_s(item, "last").map(str::to_string),
            last_decision_ms: get_n(item, "at", &what)?,
        })
    }

    /// Replaces the log with `calls_ms` and the decision `decision` made at `now_ms`, if
    /// nobody wrote it since it was read at version `seen_version`; otherwise
    /// [`AwsError::Conflict`].
    ///
    /// # Errors
    /// [`AwsError::Conflict`] as above, [`AwsError::Service`] when PutItem fails.
    ///
    /// # Cancel safety
    /// One conditional write: a cancelled save wrote or did not.
    pub async fn save(
        &self,
        seen_version: u64,
        calls_ms: &[i64],
        decision: &str,
        now_ms: i64,
    ) -> Result<(), AwsError> {
        let mut item = self.key();
        item.insert("calls".into(), encode_calls(calls_ms));
        item.insert(
            "ver".into(),
            AttributeValue::N((seen_version + 1).to_string()),
        );
        item.insert("last".into(), AttributeValue::S(decision.to_string()));
        item.insert("at".into(), AttributeValue::N(now_ms.to_string()));
        let req = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        let req = if seen_version == 0 {
            req.condition_expression("attribute_not_exists(pk)")
        } else {
            req.condition_expression("ver = :v")
                .expression_attribute_values(":v", AttributeValue::N(seen_version.to_string()))
        };
        let op = format!("PutItem {}", self.what());
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failed(&e) => Err(AwsError::Conflict {
                op,
                what: format!("version {seen_version} is no longer current"),
            }),
            Err(e) => Err(AwsError::service(op, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_round_trip_sorted() {
        assert_eq!(
            decode_calls(&encode_calls(&[]), "c").unwrap(),
            Vec::<i64>::new()
        );
        let v = encode_calls(&[5, -1, 1_700_000_000_000]);
        assert_eq!(
            decode_calls(&v, "c").unwrap(),
            vec![-1, 5, 1_700_000_000_000]
        );
    }

    #[test]
    fn bad_calls_name_the_attribute() {
        let err = decode_calls(&AttributeValue::S("x".into()), "item calls").unwrap_err();
        assert!(err.to_string().contains("item calls"), "{err}");
        let v = AttributeValue::L(vec![
            AttributeValue::N("1".into()),
            AttributeValue::N("1.5".into()),
        ]);
        let err = decode_calls(&v, "item calls").unwrap_err();
        assert!(err.to_string().contains("item calls[1] = 1.5"), "{err}");
        let v = AttributeValue::L(vec![AttributeValue::S("1".into())]);
        assert!(decode_calls(&v, "c").is_err());
    }
}

//! Hot reload of rules kept in S3, on local AWS: a shard processor runs the first version,
//! an invalid upload is rejected while that version keeps alerting, and a valid update is
//! swapped in between batches with no restart. Alerts reach the pane rows with their ids.

use std::time::Duration;

use eventide_aws::config::Clients;
use eventide_aws::dead_letter::DeadLetters;
use eventide_aws::rules::{LiveRules, PollOutcome};
use eventide_aws::sinks::PaneRow;
use eventide_engine::PipelineSpec;
use eventide_ports::source::InputRecord;
use eventide_runtime::processor::ShardProcessor;

const MIN: i64 = 60_000;

fn spec() -> PipelineSpec {
    PipelineSpec::from_toml(
        r#"
        [input]
        event_time = { field = "event_time" }
        fields = { subscriber_id = "string", counter = "string", value = "number" }
        [[aggregation]]
        name = "n"
        group_by = ["subscriber_id"]
        window = { type = "tumbling", size = "1m" }
        aggregates = [{ name = "n", fn = "count" }]
        "#,
    )
    .unwrap()
}

fn batch(first_seq: u64, minute: i64, values: &[f64]) -> Vec<InputRecord> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| InputRecord {
            sequence_number: (first_seq + i as u64).to_string(),
            partition_key: "s1".into(),
            data: format!(
                r#"{{"subscriber_id":"s1","counter":"x","value":{v},"event_time":{}}}"#,
                minute * MIN + i as i64
            )
            .into_bytes(),
            arrival_ms: None,
            sub_sequence_number: None,
            malformed: None,
        })
        .collect()
}

/// Runs a batch and moves the watermark past its minute: the alert rows it fired.
fn run(p: &mut ShardProcessor, records: &[InputRecord], minute: i64) -> Vec<PaneRow> {
    let mut rows = p.apply(records).panes;
    rows.extend(p.advance_watermark((minute + 1) * MIN));
    rows.into_iter()
        .filter(|r| r.aggregation.starts_with("alert:"))
        .collect()
}

async fn put(c: &Clients, bucket: &str, text: &str) {
    c.s3.put_object()
        .bucket(bucket)
        .key("rules/rules.toml")
        .body(text.as_bytes().to_vec().into())
        .send()
        .await
        .expect("rules uploaded");
}

const V1: &str = r#"
[[rule]]
id = "busy"
key = ["subscriber_id"]
when = "count(1m) >= 2"
"#;

const BAD: &str = r#"
[[rule]]
id = "busy"
key = ["subscriber_id"]
when = "count(1m) >= 2 and sum(value where counter = 'x', 1m) > 5"
"#;

const V2: &str = r#"
[[rule]]
id = "busy"
key = ["subscriber_id"]
when = "count(1m) >= 2"

[[rule]]
id = "big"
key = ["subscriber_id"]
when = "max(value, 1m) > 50"
"#;

#[tokio::test]
async fn s3_rules_are_swapped_live_and_invalid_updates_rejected() {
    eventide_testkit::require_local_aws();
    let c = Clients::from_env().await;
    let bucket = format!(
        "rules-reload-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() % 1_000_000)
    );
    DeadLetters::ensure_bucket(&c.s3, &bucket).await.unwrap();
    let url = format!("s3://{bucket}/rules/rules.toml");
    let spec = spec();
    let live = LiveRules::new(c.s3.clone(), &url, spec.input.clone(), Duration::ZERO).unwrap();
    let mut p = ShardProcessor::new("shardId-000000000000", spec);

    // No object yet: nothing to run, no error.
    assert_eq!(live.poll().await.unwrap(), PollOutcome::Unchanged);
    assert!(live.current().await.is_none());

    put(&c, &bucket, V1).await;
    let v1 = live.current().await.expect("version 1 loaded");
    assert_eq!(v1.version, 1);
    p.apply_rules(&v1);
    let alerts = run(&mut p, &batch(100, 0, &[1.0, 99.0]), 0);
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].aggregation, "alert:busy");
    assert_eq!(
        (alerts[0].window_end, alerts[0].key()),
        (MIN, "s1".to_string())
    );
    assert_eq!(alerts[0].values[0], ("count(1m)".to_string(), Some(2.0)));
    assert_eq!(
        live.poll().await.unwrap(),
        PollOutcome::Unchanged,
        "same ETag"
    );

    // An invalid update is rejected, naming the rule, field and column; version 1 runs on.
    put(&c, &bucket, BAD).await;
    match live.poll().await.unwrap() {
        PollOutcome::Rejected { reason } => assert!(
            reason.contains("rule[0] \"busy\" `when` at column 36: in `where`"),
            "{reason}"
        ),
        other => panic!("expected a rejection, got {other:?}"),
    }
    let still = live.current().await.expect("version 1 still there");
    assert_eq!(still.version, 1);
    p.apply_rules(&still);
    // Minute 1 is quiet (count 1: false), minute 2 is busy again: a new transition.
    assert!(run(&mut p, &batch(200, 1, &[1.0]), 1).is_empty());
    let alerts = run(&mut p, &batch(300, 2, &[1.0, 2.0]), 2);
    assert_eq!(
        alerts
            .iter()
            .map(|a| a.aggregation.as_str())
            .collect::<Vec<_>>(),
        vec!["alert:busy"]
    );

    // A valid update is swapped in before the next batch: "busy" keeps its state (it is
    // unchanged, and true at minute 3 after minute 2: no new alert), "big" starts.
    put(&c, &bucket, V2).await;
    let v2 = live.current().await.expect("version 2 loaded");
    assert_eq!(v2.version, 2);
    p.apply_rules(&v2);
    let alerts = run(&mut p, &batch(400, 3, &[70.0, 3.0]), 3);
    assert_eq!(
        alerts
            .iter()
            .map(|a| a.aggregation.as_str())
            .collect::<Vec<_>>(),
        vec!["alert:big"]
    );
    assert_eq!(
        alerts[0].values[0],
        ("max(value, 1m)".to_string(), Some(70.0))
    );
    // Ids are deterministic: the same alert from a second processor has the same id.
    let mut q = ShardProcessor::new("shardId-000000000000", self::spec());
    q.apply_rules(&v2);
    let again = run(&mut q, &batch(400, 3, &[70.0, 3.0]), 3);
    let ids = |v: &[PaneRow]| {
        let mut ids: Vec<String> = v.iter().map(|r| r.pane_id.clone()).collect();
        ids.sort();
        ids
    };
    assert!(ids(&again).contains(&alerts[0].pane_id));
}

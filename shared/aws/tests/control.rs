//! The control table and the global watermark against local AWS (moto DynamoDB).

mod common;

use eventide_aws::control::{ensure_table, global_watermark_of, ControlTable, ShardStatus};

const T0: i64 = 1_700_000_000_000;
const IDLE: i64 = 30_000;

fn status(shard: &str, wm: i64, hb: i64, finished: bool) -> ShardStatus {
    ShardStatus {
        shard_id: shard.into(),
        wm,
        heartbeat_ms: hb,
        rps: 12.5,
        bps: 2_048.0,
        lag_ms: 7,
        late: 2,
        finished,
    }
}

async fn control() -> ControlTable {
    let c = common::clients().await;
    let name = common::unique("control");
    ensure_table(&c.dynamodb, &name).await.unwrap();
    ensure_table(&c.dynamodb, &name).await.unwrap(); // idempotent
    ControlTable::new(c.dynamodb.clone(), name, "pipe")
}

/// The global watermark of the rows as stored at `now_ms`.
async fn global(control: &ControlTable, now_ms: i64) -> Option<i64> {
    global_watermark_of(&control.shards_status().await.unwrap(), IDLE, now_ms)
}

#[tokio::test]
async fn global_watermark_min_idle_finished() {
    let control = control().await;
    assert_eq!(global(&control, T0).await, None, "no shards yet");

    // Minimum over active shards.
    control
        .publish(&status("s0", T0 - 5_000, T0, false))
        .await
        .unwrap();
    control
        .publish(&status("s1", T0 - 9_000, T0, false))
        .await
        .unwrap();
    assert_eq!(global(&control, T0).await, Some(T0 - 9_000));

    // s1 goes idle (no new data for longer than the timeout): only s0 counts.
    let now = T0 + IDLE + 1;
    control
        .publish(&status("s0", T0 + 20_000, now, false))
        .await
        .unwrap();
    assert_eq!(global(&control, now).await, Some(T0 + 20_000));

    // s1 wakes up with an older watermark: the table's minimum drops (each consumer's
    // engine keeps its own watermark from moving back).
    control
        .publish(&status("s1", T0 + 1_000, now, false))
        .await
        .unwrap();
    assert_eq!(global(&control, now).await, Some(T0 + 1_000));

    // A finished shard no longer holds it back.
    control
        .publish(&status("s1", T0 + 1_000, now, true))
        .await
        .unwrap();
    assert_eq!(global(&control, now).await, Some(T0 + 20_000));

    // Everything idle or finished: the maximum of their watermarks.
    let later = now + IDLE + 1;
    assert_eq!(global(&control, later).await, Some(T0 + 20_000));
    control
        .publish(&status("s2", T0 + 50_000, T0, false))
        .await
        .unwrap(); // idle from the start
    assert_eq!(global(&control, later).await, Some(T0 + 50_000));
}

#[tokio::test]
async fn shards_status_returns_all_rows_of_the_pipeline() {
    let control = control().await;
    control.publish(&status("s1", 10, 20, false)).await.unwrap();
    control.publish(&status("s0", 30, 40, true)).await.unwrap();
    control.publish(&status("s0", 31, 41, true)).await.unwrap(); // replaces
    let mut nan = status("s2", 1, 2, false);
    nan.rps = f64::NAN; // stored as 0, DynamoDB has no NaN
    control.publish(&nan).await.unwrap();
    // Another pipeline in the same table is not included.
    let other = ControlTable::new(common::clients().await.dynamodb, control.table(), "other");
    other.publish(&status("s9", 1, 1, false)).await.unwrap();

    let rows = control.shards_status().await.unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0], status("s0", 31, 41, true));
    assert_eq!(rows[1], status("s1", 10, 20, false));
    assert_eq!((rows[2].shard_id.as_str(), rows[2].rps), ("s2", 0.0));
    assert_eq!(other.shards_status().await.unwrap().len(), 1);
}

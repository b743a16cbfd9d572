//! KPL de-aggregation throughput: reference-workload events (about 100 bytes each) packed
//! as the KPL packs them by default (aggregates of at most 51,200 bytes), expanded by
//! `kpl::deaggregate` as a shard source does, in user records per second; and the same
//! events as plain records through the same function, for comparison.
//!
//! `cargo bench -p eventide-ports --bench kpl` (set `KPL_EVENTS` for another count).

use std::time::Instant;

use eventide_ports::kpl::{aggregate, deaggregate, DEFAULT_MAX_RECORDS};
use eventide_ports::source::InputRecord;

/// The KPL's default `AggregationMaxSize`.
const AGGREGATE_BYTES: usize = 51_200;

fn events(n: usize) -> Vec<(String, Vec<u8>)> {
    let mut x: u64 = 42;
    (0..n)
        .map(|i| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let sub = format!("s{:06}", (x >> 33) % 10_000);
            let counter = if (x >> 20) & 1 == 0 { "x" } else { "y" };
            let line = format!(
                r#"{{"subscriber_id":"{sub}","counter":"{counter}","value":{}.{:02},"event_time":{}}}"#,
                (x >> 7) % 100,
                (x >> 3) % 100,
                1_767_225_600_000i64 + i as i64 * 97
            );
            (sub, line.into_bytes())
        })
        .collect()
}

/// Kinesis records of the KPL: aggregates filled up to [`AGGREGATE_BYTES`].
fn aggregated(events: &[(String, Vec<u8>)]) -> Vec<InputRecord> {
    let mut out = Vec::new();
    let mut part: Vec<(&str, &[u8])> = Vec::new();
    let mut bytes = 0;
    let mut flush = |part: &mut Vec<(&str, &[u8])>| {
        if !part.is_empty() {
            let seq = format!("{}", 49_000_000_000u64 + out.len() as u64);
            out.push(InputRecord::new(seq, part[0].0, aggregate(part), None));
            part.clear();
        }
    };
    for (k, d) in events {
        let size = k.len() + d.len() + 8;
        if bytes + size > AGGREGATE_BYTES {
            flush(&mut part);
            bytes = 0;
        }
        part.push((k.as_str(), d.as_slice()));
        bytes += size;
    }
    flush(&mut part);
    out
}

/// Runs `records` through `deaggregate` `rounds` times; returns user records per second.
fn run(records: &[InputRecord], rounds: usize) -> (usize, f64) {
    let mut users = 0;
    let t = Instant::now();
    for _ in 0..rounds {
        let mut out = Vec::new();
        for r in records {
            deaggregate(
                "shardId-000000000000",
                r.clone(),
                DEFAULT_MAX_RECORDS,
                &mut out,
            );
        }
        users += out.len();
        std::hint::black_box(out);
    }
    (users, users as f64 / t.elapsed().as_secs_f64())
}

fn main() {
    let n: usize = std::env::var("KPL_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let ev = events(n);
    let agg = aggregated(&ev);
    let plain: Vec<InputRecord> = ev
        .iter()
        .enumerate()
        .map(|(i, (k, d))| {
            InputRecord::new(
                format!("{}", 49_000_000_000u64 + i as u64),
                k,
                d.clone(),
                None,
            )
        })
        .collect();
    let bytes: usize = agg.iter().map(|r| r.data.len()).sum();
    println!(
        "{n} events in {} aggregates ({:.0} user records and {:.1} KiB each)",
        agg.len(),
        n as f64 / agg.len() as f64,
        bytes as f64 / agg.len() as f64 / 1024.0
    );
    // Warm up, then the best of 5 runs of 5 rounds each.
    run(&agg, 1);
    run(&plain, 1);
    for (what, records) in [("aggregated (KPL)", &agg), ("plain records", &plain)] {
        let best = (0..5).map(|_| run(records, 5).1).fold(0.0, f64::max);
        let mb = if what.starts_with("aggregated") {
            format!(
                ", {:.0} MB/s of aggregates",
                best / n as f64 * bytes as f64 / 1e6
            )
        } else {
            String::new()
        };
        println!("{what:>18}: {:.2}M user records/s{mb}", best / 1e6);
    }
}

//! `eventide status`: what the shard consumers of a pipeline are doing, from the lease
//! table (`<prefix>-leases`) and the control table (`<prefix>-control`).

use std::collections::BTreeMap;
use std::fmt::Write;

use anyhow::{Context, Result};
use eventide_aws::config::Clients;
use eventide_aws::control::{global_watermark_of, ControlTable, ShardStatus};
use eventide_aws::leases::LeaseTable;
use eventide_ports::lease::Lease;

/// Reads both tables of pipeline `name` under `prefix` and prints the status table.
pub async fn status(name: &str, prefix: &str, idle_timeout_ms: i64) -> Result<()> {
    let clients = Clients::from_env().await;
    let control_table = format!("{prefix}-control");
    let lease_table = format!("{prefix}-leases");
    let rows = ControlTable::new(clients.dynamodb.clone(), &control_table, name)
        .shards_status()
        .await
        .with_context(|| format!("reading control table {control_table}"))?;
    let leases = LeaseTable::new(clients.dynamodb.clone(), &lease_table, name)
        .list()
        .await
        .with_context(|| format!("reading lease table {lease_table}"))?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    print!("{}", render(&leases, &rows, now_ms, idle_timeout_ms));
    Ok(())
}

/// The status table: one line per shard found in either table, then the global watermark.
pub fn render(leases: &[Lease], rows: &[ShardStatus], now_ms: i64, idle_timeout_ms: i64) -> String {
    let mut shards: BTreeMap<&str, (Option<&Lease>, Option<&ShardStatus>)> = BTreeMap::new();
    for l in leases {
        shards.entry(&l.shard_id).or_default().0 = Some(l);
    }
    for r in rows {
        shards.entry(&r.shard_id).or_default().1 = Some(r);
    }
    let mut lines = vec![[
        "shard",
        "owner",
        "lease",
        "checkpoint",
        "watermark",
        "hb age",
        "rec/s",
        "bytes/s",
        "lag ms",
        "late",
        "finished",
    ]
    .map(String::from)];
    for (shard, (lease, row)) in &shards {
        let owner = match lease {
            None => "-".to_string(),
            Some(l) => match &l.owner {
                None => "(free)".to_string(),
                Some(o) if l.is_expired(now_ms) => format!("{o} (expired)"),
                Some(o) => o.clone(),
            },
        };
        let dash = || "-".to_string();
        let finished = lease.is_some_and(|l| l.finished) || row.is_some_and(|r| r.finished);
        lines.push([
            shard.to_string(),
            owner,
            lease.map_or_else(dash, |l| l.counter.to_string()),
            lease.map_or_else(dash, |l| abbreviate(&l.checkpoint)),
            row.map_or_else(dash, |r| watermark(r.wm)),
            row.map_or_else(dash, |r| age(now_ms - r.heartbeat_ms, r.heartbeat_ms)),
            row.map_or_else(dash, |r| format!("{:.1}", r.rps)),
            row.map_or_else(dash, |r| format!("{:.0}", r.bps)),
            row.map_or_else(dash, |r| r.lag_ms.to_string()),
            row.map_or_else(dash, |r| r.late.to_string()),
            if finished { "yes" } else { "no" }.to_string(),
        ]);
    }
    let mut widths = [0usize; 11];
    for line in &lines {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for line in &lines {
        let cells: Vec<String> = line
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (cell, w))| match i {
                2 | 6 | 7 | 8 => format!("{cell:>w$}"),
                _ => format!("{cell:<w$}"),
            })
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    let global = global_watermark_of(rows, idle_timeout_ms, now_ms);
    let _ = writeln!(
        out,
        "global watermark (idle timeout {idle_timeout_ms} ms): {}",
        match global {
            None => "none (no control rows)".to_string(),
            Some(wm) if wm == i64::MIN || wm == i64::MAX => watermark(wm),
            Some(wm) => format!("{} ({wm})", watermark(wm)),
        }
    );
    out
}

/// A sequence number shortened to its first and last 6 characters.
fn abbreviate(s: &str) -> String {
    let n = s.chars().count();
    if n <= 15 {
        return s.to_string();
    }
    let head: String = s.chars().take(6).collect();
    let tail: String = s.chars().skip(n - 6).collect();
    format!("{head}…{tail}")
}

/// A heartbeat age (`-` when there was never one).
fn age(ms: i64, heartbeat_ms: i64) -> String {
    if heartbeat_ms <= 0 {
        "-".into()
    } else {
        format!("{:.1}s", ms as f64 / 1000.0)
    }
}

/// A watermark: `-inf`, `+inf` or RFC 3339 UTC with milliseconds.
fn watermark(wm: i64) -> String {
    match wm {
        i64::MIN => "-inf".into(),
        i64::MAX => "+inf".into(),
        _ => rfc3339(wm),
    }
}

/// Epoch ms as RFC 3339 UTC, e.g. `2023-11-14T22:13:20.000Z`.
fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60,
        ms.rem_euclid(1000)
    )
}

/// (year, month, day) of the proleptic Gregorian calendar for days since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(watermark(i64::MIN), "-inf");
        assert_eq!(watermark(i64::MAX), "+inf");
        assert_eq!(abbreviate("TRIM_HORIZON"), "TRIM_HORIZON");
        assert_eq!(
            abbreviate("49650000000000000000000000000000000000000000000000000002"),
            "496500…000002"
        );
    }

    #[test]
    fn table() {
        let now = 1_700_000_010_000;
        let lease = Lease {
            shard_id: "shardId-000000000000".into(),
            owner: Some("w1".into()),
            counter: 3,
            expires_ms: now + 5_000,
            checkpoint: "TRIM_HORIZON".into(),
            parents: vec![],
            finished: false,
        };
        let row = ShardStatus {
            shard_id: "shardId-000000000000".into(),
            wm: 1_700_000_000_000,
            heartbeat_ms: now - 1_500,
            rps: 12.0,
            bps: 3_400.0,
            lag_ms: 0,
            late: 4,
            finished: false,
        };
        let out = render(&[lease], &[row], now, 10_000);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert!(lines[0].starts_with("shard "), "{out}");
        assert!(
            lines[1].contains("2023-11-14T22:13:20.000Z")
                && lines[1].contains("1.5s")
                && lines[1].contains(" 4 "),
            "{out}"
        );
        assert!(
            lines[2].ends_with("2023-11-14T22:13:20.000Z (1700000000000)"),
            "{out}"
        );
    }
}

//! The totals of a worker run, for the progress lines and the summary it logs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tracing::info;

use crate::shard::BatchReport;

/// Totals of a worker run, for the summary it logs when it stops.
#[derive(Debug, Default)]
pub(super) struct RunTotals {
    pub(super) records: AtomicU64,
    state_writes: AtomicU64,
    state_bytes: AtomicU64,
    pub(super) late: AtomicU64,
    pub(super) panes: AtomicU64,
    batches_with_panes: AtomicU64,
    latency_us_sum: AtomicU64,
    latency_us_max: AtomicU64,
}

impl RunTotals {
    pub(super) fn add(&self, report: &BatchReport) {
        self.records.fetch_add(report.records, Ordering::Relaxed);
        self.panes.fetch_add(report.panes, Ordering::Relaxed);
        self.late.fetch_add(report.late, Ordering::Relaxed);
        self.state_writes
            .fetch_add(report.state_writes, Ordering::Relaxed);
        self.state_bytes
            .fetch_add(report.state_bytes, Ordering::Relaxed);
        if let Some(ms) = report.pane_latency_ms {
            let us = (ms * 1e3) as u64;
            self.batches_with_panes.fetch_add(1, Ordering::Relaxed);
            self.latency_us_sum.fetch_add(us, Ordering::Relaxed);
            self.latency_us_max.fetch_max(us, Ordering::Relaxed);
        }
    }

    pub(super) fn log(&self, worker: &str, exit: impl std::fmt::Debug, elapsed: Duration) {
        let records = self.records.load(Ordering::Relaxed);
        let batches = self.batches_with_panes.load(Ordering::Relaxed).max(1);
        let state_bytes = self.state_bytes.load(Ordering::Relaxed);
        info!(
            worker,
            ?exit,
            records,
            panes = self.panes.load(Ordering::Relaxed),
            late = self.late.load(Ordering::Relaxed),
            state_writes = self.state_writes.load(Ordering::Relaxed),
            state_bytes,
            state_bytes_per_event = state_bytes as f64 / records.max(1) as f64,
            events_per_second = records as f64 / elapsed.as_secs_f64().max(1e-3),
            pane_latency_ms_mean =
                self.latency_us_sum.load(Ordering::Relaxed) as f64 / batches as f64 / 1e3,
            pane_latency_ms_max = self.latency_us_max.load(Ordering::Relaxed) as f64 / 1e3,
            "worker stopped"
        );
    }
}

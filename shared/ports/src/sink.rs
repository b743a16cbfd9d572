//! Where the consumer's output goes: fired panes, and records set aside (dead letters and
//! late data).

use std::sync::Arc;

use crate::rows::{DeadLetter, PaneRow};
use crate::{BoxFuture, PortError};

/// A destination of fired panes.
///
/// Every implementation must be idempotent per `batch_id`: a batch that is replayed after a
/// crash writes the same panes (same deterministic pane ids) with the same `batch_id`, and
/// must not duplicate them downstream.
///
/// # Cancel safety
/// A cancelled write may have written part of the batch; the retry overwrites it.
pub trait PaneSink: Send + Sync {
    /// Writes `rows`, fired by the batch named `batch_id`.
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when the destination refuses the write.
    fn write<'a>(
        &'a self,
        rows: &'a [PaneRow],
        batch_id: &'a str,
    ) -> BoxFuture<'a, Result<(), PortError>>;
}

/// Which aggregations' panes a [`Routed`] sink passes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Aggregations {
    /// Only these (the INSERTs whose sink table names this sink).
    Only(Vec<String>),
    /// All but these (the consumer's default sinks, with the INSERTs routed elsewhere).
    AllBut(Vec<String>),
}

impl Aggregations {
    /// True when panes of `aggregation` pass.
    ///
    /// ```
    /// use eventide_ports::sink::Aggregations;
    /// assert!(Aggregations::Only(vec!["q1".into()]).contains("q1"));
    /// assert!(!Aggregations::AllBut(vec!["q1".into()]).contains("q1"));
    /// assert!(Aggregations::AllBut(vec![]).contains("q2"));
    /// ```
    pub fn contains(&self, aggregation: &str) -> bool {
        match self {
            Aggregations::Only(names) => names.iter().any(|n| n == aggregation),
            Aggregations::AllBut(names) => !names.iter().any(|n| n == aggregation),
        }
    }
}

/// A [`PaneSink`] that passes on the panes of some aggregations only: each INSERT of a SQL
/// statement set writes to its own sink, as in Flink. A batch with none of them writes
/// nothing; otherwise the inner sink gets the same subset, in the same order, every time
/// the batch is replayed, so its idempotence per `batch_id` holds.
///
/// # Cancel safety
/// As the inner sink's.
pub struct Routed {
    aggregations: Aggregations,
    inner: Arc<dyn PaneSink>,
}

impl Routed {
    /// `inner`, given only the panes of `aggregations`.
    pub fn new(aggregations: Aggregations, inner: Arc<dyn PaneSink>) -> Self {
        Routed {
            aggregations,
            inner,
        }
    }
}

impl PaneSink for Routed {
    fn write<'a>(
        &'a self,
        rows: &'a [PaneRow],
        batch_id: &'a str,
    ) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            if rows
                .iter()
                .all(|r| self.aggregations.contains(&r.aggregation))
            {
                return self.inner.write(rows, batch_id).await;
            }
            let mine: Vec<PaneRow> = rows
                .iter()
                .filter(|r| self.aggregations.contains(&r.aggregation))
                .cloned()
                .collect();
            if mine.is_empty() {
                return Ok(());
            }
            self.inner.write(&mine, batch_id).await
        })
    }
}

/// A destination of records set aside with their reason: malformed records (dead letters)
/// or records too late for an aggregation (late data).
///
/// Idempotent per (shard, first record): a replayed batch overwrites what it wrote.
///
/// # Cancel safety
/// As [`PaneSink`].
pub trait RecordSink: Send + Sync {
    /// Writes the records of one batch of `shard`; does nothing when `records` is empty.
    ///
    /// # Errors
    /// [`PortError::Unavailable`] when the destination refuses the write.
    fn write<'a>(
        &'a self,
        shard: &'a str,
        records: &'a [DeadLetter],
    ) -> BoxFuture<'a, Result<(), PortError>>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{Env, MemoryPanes};
    use eventide_engine::pane::Pane;
    use eventide_engine::trigger::Timing;
    use eventide_engine::window::Window;

    fn row(aggregation: &str, start: i64) -> PaneRow {
        let pane = Pane {
            aggregation: 0,
            key: "k",
            key_id: 0,
            window: Window {
                start,
                end: start + 10,
            },
            timing: Timing::OnTime,
            index: 0,
            retraction: false,
            values: &[Some(1.0)],
        };
        PaneRow::from_pane(&pane, aggregation, &["k".into()], &["n".into()])
    }

    #[tokio::test]
    async fn a_routed_sink_passes_on_its_aggregations_only() {
        let env = Arc::new(Env::default());
        let (q1, rest) = (
            Arc::new(MemoryPanes::new(env.clone())),
            Arc::new(MemoryPanes::new(env.clone())),
        );
        let to_q1 = Routed::new(Aggregations::Only(vec!["q1".into()]), q1.clone());
        let to_rest = Routed::new(Aggregations::AllBut(vec!["q1".into()]), rest.clone());
        let batch = [row("q1", 0), row("q2", 0), row("q1", 10), row("q3", 0)];
        for _ in 0..2 {
            to_q1.write(&batch, "b1").await.unwrap();
            to_rest.write(&batch, "b1").await.unwrap();
        }
        let names = |s: &MemoryPanes| {
            let mut v: Vec<_> = s
                .rows()
                .values()
                .map(|r| (r.aggregation.clone(), r.window_start))
                .collect();
            v.sort();
            v
        };
        assert_eq!(names(&q1), [("q1".to_string(), 0), ("q1".to_string(), 10)]);
        assert_eq!(names(&rest), [("q2".to_string(), 0), ("q3".to_string(), 0)]);
        // A batch with none of a sink's aggregations writes nothing to it.
        to_q1.write(&[row("q2", 20)], "b2").await.unwrap();
        assert_eq!(q1.received(), 4);
    }
}

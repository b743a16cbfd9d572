//! Row order of file sinks: as fired, or sorted by key and window start.
//!
//! [`KeyOrdered`] buffers rows compactly (an interned key id, the window and the values,
//! column by column) and writes them at the end, sorted by the group-by values and then by
//! window start. Within one key, windows already fire in start order, so a stable counting
//! sort by key rank is enough.

use eventide_engine::pane::Pane;
use eventide_engine::trigger::Timing;
use eventide_engine::window::Window;
use rustc_hash::FxHashMap;

use super::PaneSink;
use crate::error::ConnectorError;

/// Formats and writes single rows; the file formats implement it.
pub trait RowWriter {
    fn row(&mut self, pane: &Pane<'_>) -> Result<(), ConnectorError>;
    fn flush(&mut self) -> Result<(), ConnectorError>;
}

/// Writes rows as panes fire.
pub struct Streaming {
    w: Box<dyn RowWriter>,
}

impl Streaming {
    pub fn new(w: Box<dyn RowWriter>) -> Self {
        Streaming { w }
    }
}

impl PaneSink for Streaming {
    fn write(&mut self, pane: &Pane<'_>) -> Result<(), ConnectorError> {
        self.w.row(pane)
    }
    fn finish(&mut self) -> Result<(), ConnectorError> {
        self.w.flush()
    }
}

/// Buffers rows and writes them sorted by key, then window start, at the end.
pub struct KeyOrdered {
    w: Box<dyn RowWriter>,
    nvalues: usize,
    ids: FxHashMap<Box<str>, u32>,
    names: Vec<Box<str>>,
    key: Vec<u32>,
    start: Vec<i64>,
    end: Vec<i64>,
    /// Pane index << 3 | timing << 1 | retraction.
    meta: Vec<u32>,
    /// NaN stands for an undefined value.
    values: Vec<f64>,
    /// Mid-run order check: rows of one key arrive in window-start order.
    last_start: Vec<i64>,
    sorted_within_keys: bool,
}

impl KeyOrdered {
    pub fn new(w: Box<dyn RowWriter>, nvalues: usize) -> Self {
        KeyOrdered {
            w,
            nvalues,
            ids: FxHashMap::default(),
            names: Vec::new(),
            key: Vec::new(),
            start: Vec::new(),
            end: Vec::new(),
            meta: Vec::new(),
            values: Vec::new(),
            last_start: Vec::new(),
            sorted_within_keys: true,
        }
    }
}

fn timing_code(t: Timing) -> u32 {
    match t {
        Timing::Early => 0,
        Timing::OnTime => 1,
        Timing::Late => 2,
    }
}

fn timing_of(code: u32) -> Timing {
    match code {
        0 => Timing::Early,
        1 => Timing::OnTime,
        _ => Timing::Late,
    }
}

impl PaneSink for KeyOrdered {
    fn write(&mut self, p: &Pane<'_>) -> Result<(), ConnectorError> {
        let id = match self.ids.get(p.key) {
            Some(&id) => id,
            None => {
                let id = self.names.len() as u32;
                self.names.push(p.key.into());
                self.ids.insert(p.key.into(), id);
                self.last_start.push(i64::MIN);
                id
            }
        };
        let last = &mut self.last_start[id as usize];
        if p.window.start < *last {
            self.sorted_within_keys = false;
        }
        *last = p.window.start;
        self.key.push(id);
        self.start.push(p.window.start);
        self.end.push(p.window.end);
        self.meta.push(p.index << 3 | timing_code(p.timing) << 1 | p.retraction as u32);
        self.values.extend(p.values.iter().map(|v| v.unwrap_or(f64::NAN)));
        Ok(())
    }

    fn finish(&mut self) -> Result<(), ConnectorError> {
        // Rank keys by their group-by values (compared field by field).
        let mut by_name: Vec<u32> = (0..self.names.len() as u32).collect();
        by_name.sort_unstable_by(|&a, &b| {
            let (ka, kb) = (&self.names[a as usize], &self.names[b as usize]);
            ka.split(eventide_engine::pane::KEY_SEP).cmp(kb.split(eventide_engine::pane::KEY_SEP))
        });
        let mut rank = vec![0u32; self.names.len()];
        for (r, &id) in by_name.iter().enumerate() {
            rank[id as usize] = r as u32;
        }
        // Stable counting sort of rows by key rank.
        let mut offsets = vec![0usize; self.names.len() + 1];
        for &k in &self.key {
            offsets[rank[k as usize] as usize + 1] += 1;
        }
        for i in 1..offsets.len() {
            offsets[i] += offsets[i - 1];
        }
        let mut order = vec![0u32; self.key.len()];
        for (row, &k) in self.key.iter().enumerate() {
            let slot = &mut offsets[rank[k as usize] as usize];
            order[*slot] = row as u32;
            *slot += 1;
        }
        if !self.sorted_within_keys {
            // Rows of a key arrived out of start order (possible with late panes): sort each run.
            order.sort_by_key(|&r| (rank[self.key[r as usize] as usize], self.start[r as usize]));
        }
        let mut vals = vec![None; self.nvalues];
        for &r in &order {
            let r = r as usize;
            for (j, v) in vals.iter_mut().enumerate() {
                let x = self.values[r * self.nvalues + j];
                *v = if x.is_nan() { None } else { Some(x) };
            }
            let m = self.meta[r];
            let pane = Pane {
                aggregation: 0,
                key: &self.names[self.key[r] as usize],
                window: Window { start: self.start[r], end: self.end[r] },
                timing: timing_of(m >> 1 & 3),
                index: m >> 3,
                retraction: m & 1 == 1,
                values: &vals,
            };
            self.w.row(&pane)?;
        }
        self.w.flush()
    }
}

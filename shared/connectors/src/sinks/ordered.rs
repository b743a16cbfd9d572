//! Row order of file sinks: as fired, or sorted by key and window start.
//!
//! [`KeyOrdered`] buffers rows compactly, per key, and writes them at the end, sorted by the group-by values and then by
//! window start. Within one key, windows already fire in start order, so a stable counting
//! sort by key rank is enough.

use eventide_engine::pane::Pane;
use eventide_engine::trigger::Timing;
use eventide_engine::window::Window;
use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use super::rows::PaneSink;
use crate::error::ConnectorError;

/// Formats and writes single rows; the file formats implement it.
pub trait RowWriter {
    fn row(&mut self, pane: &Pane<'_>) -> Result<(), ConnectorError>;
    fn flush(&mut self) -> Result<(), ConnectorError>;
}

/// Writes rows as panes fire.
pub struct Streaming {
    w: Box<dyn RowWriter + Send>,
}

impl Streaming {
    pub fn new(w: Box<dyn RowWriter + Send>) -> Self {
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
    w: Box<dyn RowWriter + Send>,
    rows: KeyBuffer,
}

impl KeyOrdered {
    pub fn new(w: Box<dyn RowWriter + Send>, nvalues: usize) -> Self {
        KeyOrdered {
            w,
            rows: KeyBuffer::new(nvalues),
        }
    }
}

/// The rows of one aggregation, buffered per key until they are written in key order.
///
/// Rows are compactly encoded (see [`encode_row`]): a typical row takes 10 to 20 bytes
/// instead of its 40 to 60 bytes of CSV. Keys are found by the pane's `key_id` through a
/// table indexed by the engine's slot, so the key string is hashed only when a key's state
/// is created, not for every row. Several buffers holding disjoint keys (lanes of one
/// aggregation) can be written together with [`KeyBuffer::write_sorted`].
pub struct KeyBuffer {
    nvalues: usize,
    /// By engine slot (`key_id` low half): the id's generation and our key index.
    by_slot: Vec<(u32, u32)>,
    ids: FxHashMap<Box<str>, u32>,
    keys: Vec<KeyRows>,
}

/// The buffered rows of one key.
struct KeyRows {
    name: Box<str>,
    rows: Vec<u8>,
    /// Start and length of the last window, for delta encoding.
    last_start: i64,
    last_len: i64,
    /// Rows arrived in window-start order (late panes may break it).
    sorted: bool,
}

impl KeyBuffer {
    /// An empty buffer for rows of `nvalues` aggregate values.
    pub fn new(nvalues: usize) -> Self {
        KeyBuffer {
            nvalues,
            by_slot: Vec::new(),
            ids: FxHashMap::default(),
            keys: Vec::new(),
        }
    }

    /// Buffers one pane.
    #[inline]
    pub fn push(&mut self, p: &Pane<'_>) {
        let i = self.key_index(p);
        encode_row(&mut self.keys[i], p);
    }

    /// Reads the end of the buffered rows of each of these keys (by [`Pane::key_id`]) and
    /// discards it: their rows come next, and reading them together lets the cache misses
    /// overlap instead of each row waiting for its own.
    #[inline]
    pub fn warm(&self, key_ids: &[u64]) {
        let mut x = 0u8;
        for &id in key_ids {
            let (slot, gen) = (id as u32 as usize, (id >> 32) as u32);
            if let Some(&(g, idx)) = self.by_slot.get(slot) {
                if g == gen {
                    if let Some(k) = self.keys.get(idx as usize) {
                        x ^= k.rows.last().copied().unwrap_or(0);
                    }
                }
            }
        }
        std::hint::black_box(x);
    }

    /// Our index of the pane's key.
    #[inline]
    fn key_index(&mut self, p: &Pane<'_>) -> usize {
        let (slot, gen) = (p.key_id as u32 as usize, (p.key_id >> 32) as u32);
        if let Some(&(g, idx)) = self.by_slot.get(slot) {
            if g == gen && idx != u32::MAX {
                return idx as usize;
            }
        }
        let idx = match self.ids.get(p.key) {
            Some(&idx) => idx,
            None => {
                let idx = self.keys.len() as u32;
                self.keys.push(KeyRows {
                    name: p.key.into(),
                    rows: Vec::with_capacity(256),
                    last_start: 0,
                    last_len: 0,
                    sorted: true,
                });
                self.ids.insert(p.key.into(), idx);
                idx
            }
        };
        if slot >= self.by_slot.len() {
            self.by_slot.resize(slot + 1, (0, u32::MAX));
        }
        self.by_slot[slot] = (gen, idx);
        idx as usize
    }

    /// Writes the rows of all `buffers` sorted by key (group-by values compared field by
    /// field), then window start, and flushes `w`.
    pub fn write_sorted(
        mut buffers: Vec<KeyBuffer>,
        w: &mut dyn RowWriter,
    ) -> Result<(), ConnectorError> {
        let nvalues = buffers.first().map_or(0, |b| b.nvalues);
        let mut all: Vec<(u32, u32)> = Vec::new();
        for (bi, b) in buffers.iter().enumerate() {
            all.extend((0..b.keys.len() as u32).map(|ki| (bi as u32, ki)));
        }
        all.sort_by(|&x, &y| {
            let (kx, ky) = (
                &buffers[x.0 as usize].keys[x.1 as usize].name,
                &buffers[y.0 as usize].keys[y.1 as usize].name,
            );
            eventide_engine::key::cmp(kx, ky)
        });
        let mut pending: Vec<Row> = Vec::new();
        let mut i = 0;
        let mut rank = 0u64;
        while i < all.len() {
            // A key's group: normally one entry, more only if lanes shared a key.
            let first = all[i];
            let mut j = i + 1;
            while j < all.len()
                && buffers[all[j].0 as usize].keys[all[j].1 as usize].name
                    == buffers[first.0 as usize].keys[first.1 as usize].name
            {
                j += 1;
            }
            let key: Box<str> =
                std::mem::take(&mut buffers[first.0 as usize].keys[first.1 as usize].name);
            let mut result = Ok(());
            let mut write = |r: &Row| {
                if result.is_ok() {
                    let pane = Pane {
                        aggregation: 0,
                        key: &key,
                        key_id: rank,
                        window: r.window,
                        timing: timing_of(r.meta >> 1 & 3),
                        index: (r.meta >> 3) as u32,
                        retraction: r.meta & 1 == 1,
                        values: &r.values,
                    };
                    result = w.row(&pane);
                }
            };
            let k = &mut buffers[first.0 as usize].keys[first.1 as usize];
            if j == i + 1 && k.sorted {
                let rows = std::mem::take(&mut k.rows);
                decode_rows(&rows, nvalues, |r| write(&r));
            } else {
                // Rows arrived out of start order (possible with late panes): sort them.
                pending.clear();
                for &(bi, ki) in &all[i..j] {
                    let rows = std::mem::take(&mut buffers[bi as usize].keys[ki as usize].rows);
                    decode_rows(&rows, nvalues, |r| pending.push(r));
                }
                pending.sort_by_key(|r| r.window.start);
                pending.iter().for_each(&mut write);
            }
            result?;
            rank += 1;
            i = j;
        }
        w.flush()
    }
}

fn timing_code(t: Timing) -> u64 {
    match t {
        Timing::Early => 0,
        Timing::OnTime => 1,
        Timing::Late => 2,
    }
}

fn timing_of(code: u64) -> Timing {
    match code {
        0 => Timing::Early,
        1 => Timing::OnTime,
        _ => Timing::Late,
    }
}

#[inline]
fn put_varint(b: &mut Vec<u8>, mut x: u64) {
    while x >= 0x80 {
        b.push(x as u8 | 0x80);
        x >>= 7;
    }
    b.push(x as u8);
}

#[inline]
fn get_varint(b: &[u8], pos: &mut usize) -> u64 {
    let mut x = 0u64;
    let mut shift = 0;
    while let Some(&byte) = b.get(*pos) {
        *pos += 1;
        x |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            break;
        }
        shift += 7;
    }
    x
}

#[inline]
fn zigzag(x: i64) -> u64 {
    (x << 1 ^ x >> 63) as u64
}

#[inline]
fn unzigzag(x: u64) -> i64 {
    (x >> 1) as i64 ^ -((x & 1) as i64)
}

/// Decimal scales tried when storing a value as a scaled integer.
const SCALES: [f64; 3] = [1.0, 100.0, 1e6];

/// Appends a value: 0 for none, 1 and 8 raw bytes, or `2 + 3 * zigzag(m) + k` when the value
/// is exactly `m / SCALES[k]` (counts, and sums of two-decimal inputs, are mostly short).
#[inline]
fn put_value(b: &mut Vec<u8>, v: Option<f64>) {
    let Some(v) = v else {
        b.push(0);
        return;
    };
    if v.is_finite() && v.abs() < 1e9 {
        for (k, &scale) in SCALES.iter().enumerate() {
            let m = (v * scale).round();
            if (m / scale).to_bits() == v.to_bits() {
                put_varint(b, 2 + 3 * zigzag(m as i64) + k as u64);
                return;
            }
        }
    }
    b.push(1);
    b.extend_from_slice(&v.to_bits().to_le_bytes());
}

#[inline]
fn get_value(b: &[u8], pos: &mut usize) -> Option<f64> {
    match get_varint(b, pos) {
        0 => None,
        1 => {
            let raw = b
                .get(*pos..*pos + 8)
                .and_then(|s| <[u8; 8]>::try_from(s).ok())
                .unwrap_or_default();
            *pos += 8;
            Some(f64::from_bits(u64::from_le_bytes(raw)))
        }
        code => {
            let c = code - 2;
            Some(unzigzag(c / 3) as f64 / SCALES[(c % 3) as usize])
        }
    }
}

/// One decoded row.
struct Row {
    window: Window,
    meta: u64,
    values: SmallVec<[Option<f64>; 4]>,
}

/// Appends a row to its key's buffer: window start and length as deltas from the key's
/// previous row, `index << 3 | timing << 1 | retraction`, then the values.
fn encode_row(k: &mut KeyRows, p: &Pane<'_>) {
    let b = &mut k.rows;
    let len = p.window.end.wrapping_sub(p.window.start);
    put_varint(b, zigzag(p.window.start.wrapping_sub(k.last_start)));
    put_varint(b, zigzag(len.wrapping_sub(k.last_len)));
    put_varint(
        b,
        u64::from(p.index) << 3 | timing_code(p.timing) << 1 | p.retraction as u64,
    );
    for v in p.values {
        put_value(b, *v);
    }
    if p.window.start < k.last_start {
        k.sorted = false;
    }
    k.last_start = p.window.start;
    k.last_len = len;
}

/// Decodes a key's rows in arrival order.
fn decode_rows(rows: &[u8], nvalues: usize, mut f: impl FnMut(Row)) {
    let (mut pos, mut start, mut len) = (0usize, 0i64, 0i64);
    while pos < rows.len() {
        start = start.wrapping_add(unzigzag(get_varint(rows, &mut pos)));
        len = len.wrapping_add(unzigzag(get_varint(rows, &mut pos)));
        let meta = get_varint(rows, &mut pos);
        let values = (0..nvalues).map(|_| get_value(rows, &mut pos)).collect();
        f(Row {
            window: Window {
                start,
                end: start.wrapping_add(len),
            },
            meta,
            values,
        });
    }
}

impl PaneSink for KeyOrdered {
    fn write(&mut self, p: &Pane<'_>) -> Result<(), ConnectorError> {
        self.rows.push(p);
        Ok(())
    }

    fn finish(&mut self) -> Result<(), ConnectorError> {
        let rows = std::mem::replace(&mut self.rows, KeyBuffer::new(0));
        KeyBuffer::write_sorted(vec![rows], &mut *self.w)
    }
}

//! What is computed: mergeable, serializable accumulators.
//!
//! An aggregation's aggregates are compiled into one [`Acc`] per slice, window or session.
//! `Acc` keeps a row count and one [`Cell`] per distinct input field; a cell tracks the
//! count and sum of its field, plus min, max, first and last by event time ([`Extrema`])
//! only if an aggregate of the aggregation needs them, so accumulators of count, sum and
//! avg stay small. Merging two accumulators is a fixed loop.
//! `first_value` and `last_value` are Flink SQL's `FIRST_VALUE`/`LAST_VALUE`: the first and
//! last non-null value in arrival order (unlike `first`/`last`, by event time). Like
//! Flink's, they have no merge of their own: merging accumulators takes the merged-in one as
//! the later arrivals, which is exact only where each window is one accumulator fed in
//! arrival order (tumbling and global windows; the spec refuses them elsewhere).
//! Count and sum (and hence avg) are invertible: [`Acc::subtract`] removes a slice, which
//! makes a long sliding window cost about as much per event as a tumbling one.
//!
//! ```
//! use eventide_engine::aggregate::{Acc, AggFn};
//! let mut a = Acc::new(1);
//! a.add(1_000, &[Some(2.0)]);
//! let mut b = Acc::new(1);
//! b.add(2_000, &[Some(4.0)]);
//! a.merge(&b);
//! assert_eq!(a.value(AggFn::Avg, Some(0)), Some(3.0));
//! a.subtract(&b);
//! assert_eq!(a.value(AggFn::Sum, Some(0)), Some(2.0));
//! ```

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

pub(crate) use crate::decimal::MAX_SCALE;
use crate::decimal::{decimal, EXACT_F64, POW10_F, POW10_I};
use crate::expr::{EvalError, Expr, NumType};
use crate::filter::Filter;
use crate::record::Record;

/// An aggregate function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AggFn {
    Count,
    Sum,
    Min,
    Max,
    Avg,
    First,
    Last,
    /// The first non-null value in arrival order (Flink's `FIRST_VALUE`).
    #[serde(rename = "first_value")]
    FirstValue,
    /// The last non-null value in arrival order (Flink's `LAST_VALUE`).
    #[serde(rename = "last_value")]
    LastValue,
    /// An output column computed from the aggregation's earlier output columns (SQL's
    /// `SUM(a) / COUNT(*)` in the SELECT list); its `expr` names them.
    Compute,
}

impl AggFn {
    /// Parses a function name from a spec.
    pub fn parse(s: &str) -> Option<AggFn> {
        Some(match s {
            "count" => AggFn::Count,
            "sum" => AggFn::Sum,
            "min" => AggFn::Min,
            "max" => AggFn::Max,
            "avg" | "mean" => AggFn::Avg,
            "first" => AggFn::First,
            "last" => AggFn::Last,
            "first_value" => AggFn::FirstValue,
            "last_value" => AggFn::LastValue,
            "compute" => AggFn::Compute,
            _ => return None,
        })
    }

    /// True when the function can be maintained by adding and subtracting slices.
    pub fn invertible(self) -> bool {
        matches!(
            self,
            AggFn::Count | AggFn::Sum | AggFn::Avg | AggFn::Compute
        )
    }

    /// True when the function needs [`Extrema`].
    pub fn extrema(self) -> bool {
        matches!(
            self,
            AggFn::Min
                | AggFn::Max
                | AggFn::First
                | AggFn::Last
                | AggFn::FirstValue
                | AggFn::LastValue
        )
    }

    /// True when the value depends on arrival order (no merge of its own, as in Flink).
    pub fn arrival_ordered(self) -> bool {
        matches!(self, AggFn::FirstValue | AggFn::LastValue)
    }
}

/// One output aggregate of an aggregation.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateSpec {
    /// Output column name.
    pub name: String,
    pub func: AggFn,
    /// Index of the input field; `None` for `count` of rows or an expression.
    pub field: Option<usize>,
    /// A computed input instead of a field ([`crate::expr`]).
    pub expr: Option<Expr>,
    /// Fixed number of decimals when printed; shortest form otherwise.
    pub decimals: Option<u8>,
    /// Only the rows that pass it count (SQL's `agg(…) FILTER (WHERE …)`); the window still
    /// exists for the rows that do not.
    pub filter: Option<Filter>,
    /// The output's SQL type when it is an integer type (Flink's `SUM` of an `INT` is an
    /// `INT`, its `AVG` of a `BIGINT` a truncated `BIGINT`): the value is truncated toward
    /// zero and wrapped to the type's width ([`NumType::coerce`]).
    pub ty: Option<NumType>,
}

/// Where a cell's values come from: a field, a row count or an expression, each possibly
/// restricted to the rows that pass a filter.
#[derive(Debug, Clone, PartialEq)]
pub struct CellSource {
    /// The input field; `None` counts rows (each passing row adds the value 1), unless
    /// `expr` is given.
    pub field: Option<usize>,
    pub filter: Option<Filter>,
    /// A computed value ([`crate::expr`]).
    pub expr: Option<Expr>,
}

impl CellSource {
    /// The cell's value for a record: `None` when the record does not pass the filter or
    /// the field or expression is null. An expression that fails is `None` too: records
    /// on which one fails are sent to the dead letters when decoded ([`CellSource::check`]).
    #[inline]
    pub fn value(&self, r: &Record<'_>) -> Option<f64> {
        if let Some(f) = &self.filter {
            if !f.matches(r) {
                return None;
            }
        }
        if let Some(e) = &self.expr {
            return e.eval(r).ok().flatten();
        }
        match self.field {
            Some(i) => r.values.get(i).and_then(|v| v.as_num()),
            None => Some(1.0),
        }
    }

    /// True when [`CellSource::check`] can fail: its filter or its expression divides
    /// integers.
    pub fn fallible(&self) -> bool {
        self.filter.as_ref().is_some_and(Filter::fallible)
            || self.expr.as_ref().is_some_and(Expr::fallible)
    }

    /// Evaluates the filter and the expression, where they can fail, whatever the filter's
    /// outcome (Flink computes an aggregate's argument and its `FILTER` condition for every
    /// row of the aggregation).
    ///
    /// # Errors
    ///
    /// The failing condition's or expression's text and why it has no value.
    pub fn check(&self, r: &Record<'_>) -> Result<(), (String, EvalError)> {
        if let Some(f) = self.filter.as_ref().filter(|f| f.fallible()) {
            f.eval(r).map_err(|err| (f.text().to_string(), err))?;
        }
        match &self.expr {
            Some(e) if e.fallible() => e
                .eval(r)
                .map(|_| ())
                .map_err(|err| (e.text().to_string(), err)),
            _ => Ok(()),
        }
    }
}

/// A sum that is exact for decimal inputs.
///
/// While every value added is an exact decimal with at most [`MAX_SCALE`] digits (its
/// `f64` is the one nearest to `m / 10^k`), the sum is kept as an integer count of
/// `10^-scale` units, so running sums and retractions never drift, and the value is
/// `units / 10^scale`: one correctly rounded division of exact integers, which is what an
/// exact decimal computation (such as summing integer cents, then dividing by 100) yields.
/// Any other value, or a sum beyond 2^53 units, switches the sum to plain floating point.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sum {
    Exact { units: i64, scale: u8 },
    Float(f64),
}

impl Default for Sum {
    fn default() -> Self {
        Sum::ZERO
    }
}

impl Sum {
    /// The empty sum.
    pub const ZERO: Sum = Sum::Exact { units: 0, scale: 0 };

    /// The sum as a number: correctly rounded while `|units| <= 2^53`.
    #[inline]
    pub fn value(self) -> f64 {
        match self {
            Sum::Exact { units, scale } => units as f64 / POW10_F[scale as usize],
            Sum::Float(f) => f,
        }
    }

    /// Adds one value.
    #[inline]
    pub fn add(&mut self, v: f64) {
        if let Sum::Exact { units, scale } = *self {
            if let Some((m, k)) = decimal(v, scale) {
                if let Some(s) = rescale(units, scale, k).and_then(|u| bounded(u.checked_add(m))) {
                    *self = Sum::Exact { units: s, scale: k };
                    return;
                }
            }
        }
        *self = Sum::Float(self.value() + v);
    }

    /// Adds another sum.
    #[inline]
    pub fn merge(&mut self, o: Sum) {
        self.combine(o, i64::checked_add, |a, b| a + b);
    }

    /// Subtracts a sum that was previously added.
    #[inline]
    pub fn subtract(&mut self, o: Sum) {
        self.combine(o, i64::checked_sub, |a, b| a - b);
    }

    #[inline]
    fn combine(
        &mut self,
        o: Sum,
        exact: impl Fn(i64, i64) -> Option<i64>,
        float: impl Fn(f64, f64) -> f64,
    ) {
        if let (
            Sum::Exact {
                units: a,
                scale: sa,
            },
            Sum::Exact {
                units: b,
                scale: sb,
            },
        ) = (*self, o)
        {
            let k = sa.max(sb);
            let r = rescale(a, sa, k).zip(rescale(b, sb, k));
            if let Some(units) = r.and_then(|(a, b)| bounded(exact(a, b))) {
                *self = Sum::Exact { units, scale: k };
                return;
            }
        }
        *self = Sum::Float(float(self.value(), o.value()));
    }
}

/// Keeps exact sums within the integers `f64` holds exactly, so [`Sum::value`] is
/// correctly rounded.
#[inline]
fn bounded(units: Option<i64>) -> Option<i64> {
    units.filter(|u| u.abs() <= EXACT_F64)
}

/// `units` at `from` decimals expressed at `to >= from` decimals, if it fits.
#[inline]
fn rescale(units: i64, from: u8, to: u8) -> Option<i64> {
    if from == to {
        return Some(units);
    }
    units.checked_mul(POW10_I[(to - from) as usize])
}

/// Minimum, maximum, first and last value by event time, and first and last value in
/// arrival order, of one field. Only aggregations that compute one of them keep it, so the
/// cells of the others (count, sum, avg) stay small.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Extrema {
    pub min: f64,
    pub max: f64,
    pub first_t: i64,
    pub first_v: f64,
    pub last_t: i64,
    pub last_v: f64,
    /// The first value added (absent from state written before it existed).
    #[serde(default)]
    pub arrived_first: Option<f64>,
    /// The last value added.
    #[serde(default)]
    pub arrived_last: Option<f64>,
}

impl Default for Extrema {
    fn default() -> Self {
        Extrema {
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            first_t: i64::MAX,
            first_v: 0.0,
            last_t: i64::MIN,
            last_v: 0.0,
            arrived_first: None,
            arrived_last: None,
        }
    }
}

impl Extrema {
    #[inline]
    fn add(&mut self, t: i64, v: f64) {
        if v < self.min {
            self.min = v;
        }
        if v > self.max {
            self.max = v;
        }
        if t < self.first_t {
            self.first_t = t;
            self.first_v = v;
        }
        if t >= self.last_t {
            self.last_t = t;
            self.last_v = v;
        }
        if self.arrived_first.is_none() {
            self.arrived_first = Some(v);
        }
        self.arrived_last = Some(v);
    }

    #[inline]
    fn merge(&mut self, o: &Extrema) {
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        if o.first_t < self.first_t {
            self.first_t = o.first_t;
            self.first_v = o.first_v;
        }
        if o.last_t >= self.last_t {
            self.last_t = o.last_t;
            self.last_v = o.last_v;
        }
        // `o` holds the later arrivals (see the module docs).
        if self.arrived_first.is_none() {
            self.arrived_first = o.arrived_first;
        }
        if o.arrived_last.is_some() {
            self.arrived_last = o.arrived_last;
        }
    }
}

/// Statistics of one numeric field: count and sum, and [`Extrema`] when the aggregation
/// needs them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub n: u64,
    pub sum: Sum,
    pub ext: Option<Box<Extrema>>,
}

impl Cell {
    fn new(extrema: bool) -> Cell {
        Cell {
            n: 0,
            sum: Sum::ZERO,
            ext: extrema.then(Box::default),
        }
    }

    #[inline]
    fn add(&mut self, t: i64, v: f64) {
        self.n += 1;
        self.sum.add(v);
        if let Some(e) = &mut self.ext {
            e.add(t, v);
        }
    }

    #[inline]
    fn merge(&mut self, o: &Cell) {
        if o.n == 0 {
            return;
        }
        self.n += o.n;
        self.sum.merge(o.sum);
        if let (Some(a), Some(b)) = (&mut self.ext, &o.ext) {
            a.merge(b);
        }
    }
}

/// A mergeable accumulator: a row count and one [`Cell`] per input field. Accumulators that
/// are merged together have the same layout (see [`CompiledAggregates::new_acc`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Acc {
    pub rows: u64,
    pub cells: SmallVec<[Cell; 1]>,
}

impl Acc {
    /// An empty accumulator over `fields` numeric fields, with every statistic.
    pub fn new(fields: usize) -> Acc {
        Acc::with_layout(fields, true)
    }

    /// An empty accumulator over `fields` numeric fields, with [`Extrema`] if `extrema`.
    pub fn with_layout(fields: usize, extrema: bool) -> Acc {
        Acc {
            rows: 0,
            cells: (0..fields).map(|_| Cell::new(extrema)).collect(),
        }
    }

    /// True when no row was added.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Adds one row: its event time and the value of each field (`None` when null).
    #[inline]
    pub fn add(&mut self, t: i64, values: &[Option<f64>]) {
        self.rows += 1;
        for (c, v) in self.cells.iter_mut().zip(values) {
            if let Some(v) = v {
                c.add(t, *v);
            }
        }
    }

    /// Merges another accumulator into this one.
    #[inline]
    pub fn merge(&mut self, o: &Acc) {
        self.rows += o.rows;
        for (c, oc) in self.cells.iter_mut().zip(o.cells.iter()) {
            c.merge(oc);
        }
    }

    /// Removes a previously merged accumulator. Only count and sum stay exact; callers use
    /// it only for aggregations whose functions are all [`AggFn::invertible`].
    #[inline]
    pub fn subtract(&mut self, o: &Acc) {
        self.rows -= o.rows;
        for (c, oc) in self.cells.iter_mut().zip(o.cells.iter()) {
            c.n -= oc.n;
            c.sum.subtract(oc.sum);
            if c.n == 0 {
                c.sum = Sum::ZERO;
            }
        }
    }

    /// Resets to empty, keeping the allocation.
    pub fn clear(&mut self) {
        self.rows = 0;
        for c in self.cells.iter_mut() {
            c.n = 0;
            c.sum = Sum::ZERO;
            if let Some(e) = &mut c.ext {
                **e = Extrema::default();
            }
        }
    }

    /// The value of one aggregate, `None` when it is undefined (e.g. min of no values).
    pub fn value(&self, func: AggFn, cell: Option<usize>) -> Option<f64> {
        let c = match cell {
            None => return Some(self.rows as f64),
            Some(i) => &self.cells[i],
        };
        match func {
            AggFn::Count => Some(c.n as f64),
            _ if c.n == 0 => None,
            AggFn::Sum => Some(c.sum.value()),
            AggFn::Avg => Some(c.sum.value() / c.n as f64),
            AggFn::Min => c.ext.as_ref().map(|e| e.min),
            AggFn::Max => c.ext.as_ref().map(|e| e.max),
            AggFn::First => c.ext.as_ref().map(|e| e.first_v),
            AggFn::Last => c.ext.as_ref().map(|e| e.last_v),
            AggFn::FirstValue => c.ext.as_ref().and_then(|e| e.arrived_first),
            AggFn::LastValue => c.ext.as_ref().and_then(|e| e.arrived_last),
            AggFn::Compute => None,
        }
    }
}

/// An aggregation's aggregates compiled against its input fields.
#[derive(Debug, Clone)]
pub struct CompiledAggregates {
    /// Where each cell's values come from.
    pub cells: Vec<CellSource>,
    /// For each output aggregate: function, cell (None = row count) and decimals.
    pub outputs: Vec<(AggFn, Option<usize>, Option<u8>)>,
    /// For each output aggregate, its integer output type, if any.
    pub types: Vec<Option<NumType>>,
    /// The computed output columns ([`AggFn::Compute`]): index and expression over the
    /// earlier output columns, in order.
    pub computed: Vec<(usize, Expr)>,
    /// True when every aggregate is invertible.
    pub invertible: bool,
    /// True when an aggregate needs [`Extrema`].
    pub extrema: bool,
}

impl CompiledAggregates {
    /// Compiles aggregate specs: one cell per distinct field and filter (a row count
    /// without a filter needs no cell).
    pub fn new(specs: &[AggregateSpec]) -> Self {
        let mut cells: Vec<CellSource> = Vec::new();
        let mut outputs = Vec::with_capacity(specs.len());
        let mut computed = Vec::new();
        for (i, s) in specs.iter().enumerate() {
            if s.func == AggFn::Compute {
                if let Some(e) = &s.expr {
                    computed.push((i, e.clone()));
                }
                outputs.push((s.func, None, s.decimals));
                continue;
            }
            let cell = (s.field.is_some() || s.filter.is_some() || s.expr.is_some()).then(|| {
                let src = CellSource {
                    field: s.field,
                    filter: s.filter.clone(),
                    expr: s.expr.clone(),
                };
                match cells.iter().position(|x| *x == src) {
                    Some(i) => i,
                    None => {
                        cells.push(src);
                        cells.len() - 1
                    }
                }
            });
            outputs.push((s.func, cell, s.decimals));
        }
        let invertible = specs.iter().all(|s| s.func.invertible());
        let extrema = specs
            .iter()
            .any(|s| (s.field.is_some() || s.expr.is_some()) && s.func.extrema());
        CompiledAggregates {
            cells,
            outputs,
            types: specs
                .iter()
                .map(|s| s.ty.filter(|t| matches!(t, NumType::Int(_))))
                .collect(),
            computed,
            invertible,
            extrema,
        }
    }

    /// A new empty accumulator for this aggregation.
    pub fn new_acc(&self) -> Acc {
        Acc::with_layout(self.cells.len(), self.extrema)
    }

    /// The output values of an accumulator, in aggregate order. A pane of no element (an
    /// on-time pane with nothing new in discarding mode) has count and sum 0, as Beam's
    /// `Count` and `Sum` give, and the other aggregates undefined.
    pub fn values(&self, acc: &Acc) -> SmallVec<[Option<f64>; 4]> {
        let mut values: SmallVec<[Option<f64>; 4]> = self
            .outputs
            .iter()
            .zip(&self.types)
            .map(|(&(f, c, _), ty)| {
                let v = match f {
                    AggFn::Compute => None,
                    AggFn::Sum if acc.rows == 0 => Some(0.0),
                    // Flink's integer AVG divides the integer sum by the count.
                    AggFn::Avg if ty.is_some() => c.and_then(|i| {
                        let cell = &acc.cells[i];
                        (cell.n > 0).then(|| {
                            let s = cell.sum.value() as i64;
                            s.wrapping_div(cell.n as i64) as f64
                        })
                    }),
                    _ => acc.value(f, c),
                };
                match ty {
                    Some(t) => v.map(|v| t.coerce(v)),
                    None => v,
                }
            })
            .collect();
        for (i, e) in &self.computed {
            // The earlier output columns as the fields of a record (the spec refuses
            // expressions that can fail here).
            let row = Record {
                time: 0,
                values: values[..*i]
                    .iter()
                    .map(|v| v.map_or(crate::record::Value::Null, crate::record::Value::Num))
                    .collect(),
            };
            let v = e.eval(&row).ok().flatten();
            values[*i] = match self.types[*i] {
                Some(t) => v.map(|v| t.coerce(v)),
                None => v,
            };
        }
        values
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_and_last_follow_event_time_not_arrival() {
        let mut a = Acc::new(1);
        a.add(20, &[Some(2.0)]);
        a.add(10, &[Some(1.0)]);
        a.add(30, &[Some(3.0)]);
        a.add(25, &[Some(9.0)]);
        assert_eq!(a.value(AggFn::First, Some(0)), Some(1.0));
        assert_eq!(a.value(AggFn::Last, Some(0)), Some(3.0));
        assert_eq!(a.value(AggFn::Min, Some(0)), Some(1.0));
        assert_eq!(a.value(AggFn::Max, Some(0)), Some(9.0));
        assert_eq!(a.value(AggFn::Count, None), Some(4.0));
    }

    #[test]
    fn nulls_count_as_rows_but_not_values() {
        let mut a = Acc::new(1);
        a.add(1, &[None]);
        assert_eq!(a.value(AggFn::Count, None), Some(1.0));
        assert_eq!(a.value(AggFn::Count, Some(0)), Some(0.0));
        assert_eq!(a.value(AggFn::Sum, Some(0)), None);
    }

    #[test]
    fn merge_is_associative_and_serializes() {
        let mk = |t: i64, v: f64| {
            let mut a = Acc::new(1);
            a.add(t, &[Some(v)]);
            a
        };
        let (x, y, z) = (mk(1, 1.0), mk(2, 5.0), mk(3, -2.0));
        let mut l = x.clone();
        l.merge(&y);
        l.merge(&z);
        let mut r = y.clone();
        r.merge(&z);
        let mut r2 = x.clone();
        r2.merge(&r);
        assert_eq!(l, r2);
        let json = serde_json::to_string(&l).unwrap();
        assert_eq!(serde_json::from_str::<Acc>(&json).unwrap(), l);
    }

    #[test]
    fn only_aggregations_with_min_max_first_or_last_keep_extrema() {
        let spec = |func| AggregateSpec {
            name: "x".into(),
            func,
            field: Some(0),
            expr: None,
            decimals: None,
            filter: None,
            ty: None,
        };
        let small = CompiledAggregates::new(&[spec(AggFn::Sum), spec(AggFn::Avg)]);
        let mut a = small.new_acc();
        a.add(1, &[Some(2.5)]);
        assert!(a.cells[0].ext.is_none());
        assert_eq!(small.values(&a).as_slice(), &[Some(2.5), Some(2.5)]);
        let full = CompiledAggregates::new(&[spec(AggFn::Sum), spec(AggFn::Max)]);
        let mut b = full.new_acc();
        b.add(1, &[Some(2.5)]);
        b.add(2, &[Some(4.0)]);
        assert_eq!(full.values(&b).as_slice(), &[Some(6.5), Some(4.0)]);
    }

    #[test]
    fn decimal_sums_are_exact() {
        let mut s = Sum::ZERO;
        s.add(0.1);
        s.add(0.2);
        assert_eq!(s.value(), 0.3);
        assert_eq!(s, Sum::Exact { units: 3, scale: 1 });
        // Scales align when a value has more decimals than the sum so far.
        s.add(0.005);
        assert_eq!(
            s,
            Sum::Exact {
                units: 305,
                scale: 3
            }
        );
        let mut t = Sum::ZERO;
        t.add(2.25);
        s.merge(t);
        assert_eq!(s.value(), 2.555);
        s.subtract(t);
        s.subtract(Sum::Exact { units: 3, scale: 1 });
        assert_eq!(s.value(), 0.005);
        // A sum of cents divided by the count, as an exact decimal computation does:
        // 0.1 + 0.2 + 0.3 is 0.6000000000000001 in running floating point.
        let mut c = Cell::default();
        for v in [0.1, 0.2, 0.3] {
            c.add(0, v);
        }
        assert_eq!(c.sum.value(), 0.6);
        assert_eq!(c.sum.value() / 3.0, 60.0 / 100.0 / 3.0);
    }

    #[test]
    fn non_decimal_or_huge_sums_fall_back_to_floats() {
        let mut s = Sum::ZERO;
        s.add(1.0 / 3.0);
        assert!(matches!(s, Sum::Float(_)));
        assert_eq!(s.value(), 1.0 / 3.0);
        let mut big = Sum::ZERO;
        big.add(9.0e15);
        big.add(9.0e15);
        big.add(0.5);
        assert!(matches!(big, Sum::Float(_)));
        assert_eq!(big.value(), 1.8e16);
        for v in [f64::NAN, f64::INFINITY] {
            let mut s = Sum::ZERO;
            s.add(v);
            assert!(matches!(s, Sum::Float(_)));
        }
    }

    #[test]
    fn subtract_restores_count_and_sum() {
        let mut a = Acc::new(1);
        a.add(1, &[Some(1.5)]);
        let mut b = Acc::new(1);
        b.add(2, &[Some(2.25)]);
        a.merge(&b);
        a.subtract(&b);
        assert_eq!(a.value(AggFn::Sum, Some(0)), Some(1.5));
        assert_eq!(a.rows, 1);
    }
}

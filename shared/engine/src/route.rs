//! Which aggregations a record reaches, under which key, with which values: compiled once
//! from the spec and used by every way of running the window operators (the streaming
//! [`crate::Pipeline`] and the key-by-key [`crate::bounded`] run), so that routing exists
//! once.
//!
//! Aggregations that group by the same fields share one group (their key is encoded once
//! per record), and the numeric fields that aggregates read are listed once as columns.
//!
//! ```
//! use eventide_engine::route::Routes;
//! use eventide_engine::spec::PipelineSpec;
//! let spec = PipelineSpec::from_toml(r#"
//!     [input]
//!     event_time = { field = "t" }
//!     fields = { k = "string", v = "number" }
//!     [[aggregation]]
//!     name = "a"
//!     group_by = ["k"]
//!     window = { type = "tumbling", size = "10ms" }
//!     aggregates = [{ name = "sum", fn = "sum", field = "v" }]
//!     [[aggregation]]
//!     name = "b"
//!     group_by = ["k"]
//!     window = { type = "tumbling", size = "1s" }
//!     aggregates = [{ name = "max", fn = "max", field = "v" }]
//! "#).unwrap();
//! let routes = Routes::new(&spec);
//! assert_eq!(routes.groups().len(), 1); // one key per record for both
//! assert_eq!(routes.cols().len(), 1); // `v`, read once
//! assert_eq!(routes.route(1).map(|r| r.group), Some(0));
//! ```

use crate::aggregate::CellSource;
use crate::filter::Filter;
use crate::record::Record;
use crate::spec::model::PipelineSpec;

/// Where one aggregation's records come from.
#[derive(Debug, Clone)]
pub struct Route {
    /// Its group-by, an index into [`Routes::groups`].
    pub group: usize,
    /// Records it aggregates (all when `None`).
    pub filter: Option<Filter>,
    /// Where each cell of its accumulators reads its value: a field, or a row count or a
    /// field restricted by the aggregate's own filter.
    pub cells: Vec<CellSource>,
    /// The plain field cells as indices into [`Routes::cols`] (all of them when
    /// [`Routes::plain`]).
    pub cols: Vec<usize>,
}

impl Route {
    /// True when `rec` passes the aggregation's filter.
    #[inline]
    pub fn admits(&self, rec: &Record<'_>) -> bool {
        self.filter.as_ref().is_none_or(|f| f.matches(rec))
    }
}

/// The routes of every aggregation of a spec.
#[derive(Debug, Clone)]
pub struct Routes {
    /// Distinct group-by field lists, in order of first use.
    groups: Vec<Vec<usize>>,
    /// Record fields whose numbers aggregates read, once each.
    cols: Vec<usize>,
    routes: Vec<Route>,
    /// The field naming a record's watermark partition.
    partition: Option<usize>,
}

impl Routes {
    /// Compiles the routes of `spec`'s aggregations.
    pub fn new(spec: &PipelineSpec) -> Self {
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let mut cols: Vec<usize> = Vec::new();
        let mut routes = Vec::with_capacity(spec.aggregations.len());
        for a in &spec.aggregations {
            let group = index_of(&mut groups, &a.group_by);
            let mut cells = crate::aggregate::CompiledAggregates::new(&a.aggregates).cells;
            // A rows window's carried fields follow the aggregates' cells.
            cells.extend(a.carried_fields().map(|f| CellSource {
                field: Some(f),
                filter: None,
                expr: None,
            }));
            let mine = cells
                .iter()
                .filter_map(|c| match (c.field, &c.filter) {
                    (Some(f), None) => Some(index_of(&mut cols, &f)),
                    _ => None,
                })
                .collect();
            routes.push(Route {
                group,
                filter: a.filter.clone(),
                cells,
                cols: mine,
            });
        }
        Routes {
            groups,
            cols,
            routes,
            partition: spec.input.partition,
        }
    }

    /// The routes, by aggregation.
    pub fn iter(&self) -> std::slice::Iter<'_, Route> {
        self.routes.iter()
    }

    /// Aggregation `agg`'s route.
    pub fn route(&self, agg: usize) -> Option<&Route> {
        self.routes.get(agg)
    }

    /// Number of aggregations.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// True when the spec has no aggregation.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The distinct group-by field lists.
    pub fn groups(&self) -> &[Vec<usize>] {
        &self.groups
    }

    /// The record fields whose numbers aggregates read, once each.
    pub fn cols(&self) -> &[usize] {
        &self.cols
    }

    /// True when every cell reads a plain field (no aggregate has a filter of its own), so
    /// a record's numbers can be kept as [`Routes::cols`].
    pub fn plain(&self) -> bool {
        self.routes.iter().all(|r| {
            r.cells
                .iter()
                .all(|c| c.field.is_some() && c.filter.is_none())
        })
    }

    /// The field naming a record's watermark partition, if the input has one.
    pub fn partition(&self) -> Option<usize> {
        self.partition
    }
}

/// The index of `item` in `list`, appending it when new.
fn index_of<T: PartialEq + Clone>(list: &mut Vec<T>, item: &T) -> usize {
    match list.iter().position(|x| x == item) {
        Some(i) => i,
        None => {
            list.push(item.clone());
            list.len() - 1
        }
    }
}

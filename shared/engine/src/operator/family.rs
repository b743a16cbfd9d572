//! The operator of each window family: the one place that knows them all.

use super::count::CountOperator;
use super::rows::RowsOperator;
use super::session::SessionOperator;
use super::sliced::SlicedOperator;
use super::{Common, WindowOperator};
use crate::spec::model::AggregationSpec;
use crate::window::WindowSpec;

/// Builds the operator for an aggregation.
pub fn build(index: usize, spec: &AggregationSpec) -> Box<dyn WindowOperator> {
    let common = Common::new(index, spec);
    match spec.window {
        WindowSpec::Sliding { .. } | WindowSpec::Cumulate { .. } | WindowSpec::Global => {
            Box::new(SlicedOperator::new(common, spec.window))
        }
        WindowSpec::Session { gap } => Box::new(SessionOperator::new(common, gap)),
        WindowSpec::Count { size, slide } => Box::new(CountOperator::new(common, size, slide)),
        WindowSpec::Rows { preceding } => {
            Box::new(RowsOperator::new(common, preceding, spec.max_pending_rows))
        }
    }
}

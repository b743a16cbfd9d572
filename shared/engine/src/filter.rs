//! Record filters such as `counter == "x" and value * 2 > 10`: the condition grammar.
//!
//! A condition compares expressions of [`crate::expr`] (arithmetic, `cast`, `case`) or
//! strings and booleans; it is compiled once against the input schema so that evaluation on
//! the hot path is a walk of a small tree with no allocation and no string work:
//!
//! ```text
//! cond    := and ("or" and)*
//! and     := unary ("and" unary)*
//! unary   := "not" unary | "(" cond ")" | operand op operand
//! op      := == | != | < | <= | > | >=
//! operand := expr (see crate::expr) | string field | bool field | "string" | true | false
//! ```
//!
//! Conditions and expressions are one grammar (a `case` has conditions, a comparison has
//! expressions), so both live in [`crate::expr`]; this module is the conditions' name.
//!
//! ```
//! use eventide_engine::spec::PipelineSpec;
//! let spec = PipelineSpec::from_toml(r#"
//!     [input]
//!     event_time = { field = "t" }
//!     fields = { counter = "string", value = "number" }
//!     [[aggregation]]
//!     name = "a"
//!     filter = 'counter == "x" and not (value * 2 < 0)'
//!     window = { type = "global" }
//!     aggregates = [{ name = "n", fn = "count" }]
//! "#).unwrap();
//! assert!(spec.aggregations[0].filter.is_some());
//! ```

pub use crate::expr::{CmpOp as Op, Filter, MAX_EXPR_BYTES, MAX_NESTING};

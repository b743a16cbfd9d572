//! Rules that change while the consumer runs (a hot-reloaded rules file).

use std::sync::Arc;

use eventide_engine::rules::RuleSpec;

use crate::BoxFuture;

/// One loaded version of the rules.
#[derive(Debug, Clone)]
pub struct RulesVersion {
    /// 1 for the first file loaded, then 2, 3, … in this process.
    pub version: u64,
    pub etag: String,
    pub rules: Vec<RuleSpec>,
    /// The rules file as loaded: a shard's state log records it, so a replay runs the
    /// rules that first ran.
    pub text: String,
}

/// Where the running rules come from: a rules file that is reloaded when it changes.
///
/// # Cancel safety
/// A read only.
pub trait RulesSource: Send + Sync {
    /// The version to run now; `None` until a valid file was loaded (the spec's rules run).
    fn current(&self) -> BoxFuture<'_, Option<Arc<RulesVersion>>>;
}

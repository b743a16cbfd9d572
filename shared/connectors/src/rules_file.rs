//! A local rules file (`[[rule]]` tables), reloaded when its content changes.
//!
//! `eventide replay --rules FILE` loads it at the start and, in a streaming run, checks it
//! every 65,536 input lines: a changed, valid file replaces the running rules (unchanged
//! rules keep their state); a changed, invalid file is logged with the rule, field, column
//! and reason, and the old rules keep running. The consumer does the same with an S3
//! object (`eventide_aws::rules`).
//!
//! ```no_run
//! use eventide_connectors::rules_file::RulesFile;
//! # let input: eventide_engine::spec::InputSpec = unimplemented!();
//! let mut f = RulesFile::new("rules.toml".as_ref());
//! if let Some(Ok(rules)) = f.poll(&input) {
//!     println!("{} rules", rules.len());
//! }
//! ```

use std::path::{Path, PathBuf};

use eventide_engine::rules::{parse_rules, RuleError, RuleSpec};
use eventide_engine::spec::InputSpec;

/// A rules file and the content last seen.
#[derive(Debug)]
pub struct RulesFile {
    path: PathBuf,
    last: Option<String>,
}

/// Why a rules file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RulesFileError {
    #[error("cannot read rules file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("rules file {path}: {source}")]
    Invalid { path: PathBuf, source: RuleError },
}

impl RulesFile {
    /// A rules file not read yet.
    pub fn new(path: &Path) -> Self {
        RulesFile {
            path: path.to_path_buf(),
            last: None,
        }
    }

    /// Reads the file; `None` when its content is unchanged since the last poll, else the
    /// compiled rules or why they are rejected. A rejected content is not retried until it
    /// changes again.
    pub fn poll(&mut self, input: &InputSpec) -> Option<Result<Vec<RuleSpec>, RulesFileError>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(source) => {
                return Some(Err(RulesFileError::Read {
                    path: self.path.clone(),
                    source,
                }))
            }
        };
        if self.last.as_deref() == Some(text.as_str()) {
            return None;
        }
        let parsed = parse_rules(&text, input).map_err(|source| RulesFileError::Invalid {
            path: self.path.clone(),
            source,
        });
        self.last = Some(text);
        Some(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventide_engine::spec::{FieldType, TimeFormat};

    #[test]
    fn reloads_changes_and_rejects_invalid_content() {
        let input = InputSpec {
            fields: vec![
                ("k".into(), FieldType::String),
                ("v".into(), FieldType::Number),
            ],
            time_field: "t".into(),
            time_format: TimeFormat::EpochMs,
            partition: None,
        };
        let dir = std::env::temp_dir().join(format!("eventide-rules-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rules.toml");
        std::fs::write(
            &path,
            "[[rule]]\nid = 'a'\nkey = ['k']\nwhen = 'sum(v, 1h) > 1'\n",
        )
        .unwrap();
        let mut f = RulesFile::new(&path);
        assert_eq!(f.poll(&input).unwrap().unwrap()[0].id, "a");
        assert!(f.poll(&input).is_none(), "unchanged content");
        std::fs::write(
            &path,
            "[[rule]]\nid = 'a'\nkey = ['k']\nwhen = 'sum(v, 1h) >'\n",
        )
        .unwrap();
        let e = f.poll(&input).unwrap().unwrap_err().to_string();
        assert!(e.ends_with("rule[0] \"a\" `when` at column 13: expected a number, a field, an aggregate or '('"), "{e}");
        assert!(
            f.poll(&input).is_none(),
            "a rejected content is not retried"
        );
        std::fs::write(
            &path,
            "[[rule]]\nid = 'b'\nkey = ['k']\nwhen = 'count(1h) > 1'\n",
        )
        .unwrap();
        assert_eq!(f.poll(&input).unwrap().unwrap()[0].id, "b");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

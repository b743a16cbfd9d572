//! Sinks for fired panes (in progress).

//! A consumer binary of your own: `eventide-consumer` (the worker, the Lambda handler, the
//! ticker, …) with every record decoded by the binary layout of [`decoder::Binary`]
//! instead of the spec's `[input] format`. A record that does not fit is a dead letter with
//! the reason and its bytes, as with JSON or CSV.
//!
//! ```sh
//! cargo build --release -p eventide-consumer --example custom_decoder_consumer
//! target/release/examples/custom_decoder_consumer worker --pipeline pipeline.toml \
//!     --name spend --stream payments --prefix demo --create
//! ```
//!
//! Under Lambda, package this binary as `bootstrap` instead of `eventide-consumer`.

use std::process::ExitCode;
use std::sync::Arc;

mod decoder;

fn main() -> ExitCode {
    eventide_consumer::main_with_decoder(Arc::new(decoder::Binary))
}

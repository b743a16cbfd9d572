//! A record format of your own: a binary layout decoded by a `Decoder` you write, run by
//! the same pipeline as JSON or CSV.
//!
//! Each record is `epoch ms (8 bytes, big-endian) | user length (1 byte) | user (UTF-8) |
//! amount (f64, 8 bytes, big-endian)`. A record that does not fit that layout is an error
//! with the reason, which the runtime sends to the dead letters with its bytes.
//!
//! `cargo run -p eventide-engine --example custom_decoder`. The same decoder in a consumer
//! binary (worker and Lambda) is `consumer.rs`.

use std::sync::Arc;

use eventide_engine::codec::Codec;
use eventide_engine::pane::{Emit, Pane};
use eventide_engine::{Output, Pipeline, PipelineSpec};

mod decoder;
use decoder::Binary;

fn encode(t: i64, user: &str, amount: f64) -> Vec<u8> {
    let mut b = t.to_be_bytes().to_vec();
    b.push(u8::try_from(user.len()).unwrap_or(u8::MAX));
    b.extend_from_slice(user.as_bytes());
    b.extend_from_slice(&amount.to_be_bytes());
    b
}

/// Prints panes and late records.
struct Print;

impl Emit for Print {
    fn pane(&mut self, p: &Pane<'_>) {
        println!(
            "{} [{}, {}): {:?}",
            p.key, p.window.start, p.window.end, p.values
        );
    }
}

impl Output for Print {
    fn late(&mut self, _aggregation: usize, raw: &[u8]) {
        println!("late: {} bytes", raw.len());
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let spec = PipelineSpec::from_toml(
        r#"
        [input]
        event_time = { field = "t" }
        fields = { user = "string", amount = "number" }
        [[aggregation]]
        name = "spend"
        group_by = ["user"]
        window = { type = "tumbling", size = "1m" }
        aggregates = [{ name = "total", fn = "sum", field = "amount" }]
        "#,
    )?;
    let codec = Codec::with_decoder(&spec, Arc::new(Binary));
    let mut pipeline = Pipeline::with_codec(spec, codec);
    let mut out = Print;
    let mut records = vec![
        encode(1_000, "ann", 2.5),
        encode(30_000, "bob", 1.0),
        encode(59_000, "ann", 4.0),
        encode(61_000, "ann", 1.0),
    ];
    records.insert(2, b"\x00\x00\x00\x00\x00\x00\x00\x01\x09ann".to_vec());
    for (i, raw) in records.iter().enumerate() {
        if let Err(reason) = pipeline.process_line(raw, "", &mut out) {
            // A runtime writes this to its dead letters with the record's bytes.
            println!("record {i}: dead letter: {reason}");
        }
    }
    pipeline.finish(&mut out);
    Ok(())
}

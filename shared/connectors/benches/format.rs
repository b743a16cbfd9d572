//! Number printing of the output rows: `push_number` in shortest form (what a SQL pipeline
//! without fixed decimals prints, e.g. `examples/sql/reference.sql`) against Rust's
//! `Display`, which it matches byte for byte, and with fixed decimals (the TOML reference
//! pipeline), over values shaped like the reference aggregates: sums of two-decimal values
//! and their averages. Rounds alternate, so a busy host slows them alike.
//!
//! `cargo bench -p eventide-connectors --bench format` (`FORMAT_VALUES`, 1,000,000 by
//! default; `FORMAT_RUNS`, 7).

use std::hint::black_box;
use std::io::Write;
use std::time::Instant;

use eventide_connectors::format::push_number;

/// One way of appending a number.
type Printer = dyn Fn(&mut Vec<u8>, f64);

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let n = env("FORMAT_VALUES", 1_000_000);
    let runs = env("FORMAT_RUNS", 7).max(1);
    let mut state = 42u64;
    let values: Vec<f64> = (0..n)
        .map(|i| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let r = state.wrapping_mul(0x2545_f491_4f6c_dd1d);
            let count = 1 + r % 40;
            let sum = (0..count)
                .map(|k| ((r >> k) % 10_000) as f64 / 100.0)
                .sum::<f64>();
            if i % 2 == 0 {
                sum
            } else {
                sum / count as f64
            }
        })
        .collect();
    let mut buf = Vec::with_capacity(32 * n);
    let mut time = |f: &Printer| {
        buf.clear();
        let t = Instant::now();
        for &v in &values {
            f(&mut buf, black_box(v));
            buf.push(b',');
        }
        black_box(&buf);
        t.elapsed().as_secs_f64() * 1e9 / n as f64
    };
    let cases: [(&str, &Printer); 4] = [
        ("push_number shortest", &|b, v| push_number(b, v, None)),
        ("Display", &|b, v| {
            let _ = write!(b, "{v}");
        }),
        ("push_number 2 decimals", &|b, v| push_number(b, v, Some(2))),
        ("ryu alone (other layout)", &|b, v| {
            b.extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes())
        }),
    ];
    let mut ns: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    for _ in 0..runs {
        for (i, (_, f)) in cases.iter().enumerate() {
            ns[i].push(time(f));
        }
    }
    println!("{n} values, {runs} rounds, ns per value (median, best):");
    for ((name, _), t) in cases.iter().zip(&mut ns) {
        t.sort_by(f64::total_cmp);
        println!("  {name:<24} {:>7.1} {:>7.1}", t[t.len() / 2], t[0]);
    }
}

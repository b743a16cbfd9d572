//! Fuzzing harness for hostile input (issue 10), run by `cargo test` for a bounded number of
//! cases (256 per property, or `PROPTEST_CASES`): the event decoders (JSON and CSV), the spec
//! parser and the filter and rule grammars must answer every input with `Ok` or an error — never a panic,
//! a stack overflow or a hang. Inputs are built from the grammars' own tokens so that the
//! parsers get past their first byte, mixed with arbitrary bytes.

use eventide_engine::codec::json::Schema;
use eventide_engine::filter::Filter;
use eventide_engine::rules::expr::Expr;
use eventide_engine::rules::parse_rules;
use eventide_engine::spec::{FieldType, InputSpec, PipelineSpec, TimeFormat};
use proptest::prelude::*;

fn input() -> InputSpec {
    InputSpec {
        fields: vec![
            ("k".into(), FieldType::String),
            ("counter".into(), FieldType::String),
            ("value".into(), FieldType::Number),
            ("ok".into(), FieldType::Bool),
        ],
        time_field: "t".into(),
        time_format: TimeFormat::EpochMs,
        partition: None,
    }
}

/// Text made of grammar tokens, repeated nesting and stray bytes.
fn grammar_text() -> impl Strategy<Value = String> {
    let tok = prop_oneof![
        Just("(".to_string()),
        Just(")".to_string()),
        Just(" and ".to_string()),
        Just(" or ".to_string()),
        Just("not ".to_string()),
        Just("-".to_string()),
        Just(" + ".to_string()),
        Just(" * ".to_string()),
        Just(" / ".to_string()),
        Just("value".to_string()),
        Just("counter".to_string()),
        Just("ok".to_string()),
        Just(" == ".to_string()),
        Just(" <= ".to_string()),
        Just(" > ".to_string()),
        Just("\"x\"".to_string()),
        Just("'".to_string()),
        Just("\"".to_string()),
        Just("1".to_string()),
        Just("-1e309".to_string()),
        Just("true".to_string()),
        Just("count(".to_string()),
        Just("sum(value".to_string()),
        Just(" where ".to_string()),
        Just(", 1h)".to_string()),
        Just("72h".to_string()),
        Just(",".to_string()),
        Just("é".to_string()),
        Just("\u{1f}".to_string()),
        (1usize..3000).prop_map(|n| "(".repeat(n)),
        (1usize..3000).prop_map(|n| "not ".repeat(n)),
        any::<String>(),
    ];
    prop::collection::vec(tok, 0..24).prop_map(|v| v.concat())
}

/// JSON-ish lines: fragments of events and control objects, and arbitrary bytes.
fn line_bytes() -> impl Strategy<Value = Vec<u8>> {
    let tok = prop_oneof![
        Just(b"{".to_vec()),
        Just(b"}".to_vec()),
        Just(b"[".to_vec()),
        Just(b"]".to_vec()),
        Just(b",".to_vec()),
        Just(b":".to_vec()),
        Just(br#""k""#.to_vec()),
        Just(br#""t""#.to_vec()),
        Just(br#""value""#.to_vec()),
        Just(br#""advance_watermark""#.to_vec()),
        Just(br#""advance_processing_time""#.to_vec()),
        Just(br#""+inf""#.to_vec()),
        Just(b"18446744073709551616".to_vec()),
        Just(b"-9223372036854775809".to_vec()),
        Just(b"1e400".to_vec()),
        Just(b"null".to_vec()),
        Just(b"\xef\xbb\xbf".to_vec()),
        Just(b"\xff\xfe".to_vec()),
        (1usize..2000).prop_map(|n| b"[".repeat(n)),
        (1usize..2000).prop_map(|n| br#"{"a":"#.repeat(n)),
        prop::collection::vec(any::<u8>(), 0..16),
    ];
    prop::collection::vec(tok, 0..24).prop_map(|v| v.concat())
}

/// CSV-ish rows: delimiters, quotes, line ends, numbers, times and arbitrary bytes.
fn csv_bytes() -> impl Strategy<Value = Vec<u8>> {
    let tok = prop_oneof![
        Just(b",".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"\"\"".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\n".to_vec()),
        Just(b" ".to_vec()),
        Just(b"1767225600000".to_vec()),
        Just(b"-9223372036854775809".to_vec()),
        Just(b"2026-01-01T00:00:00Z".to_vec()),
        Just(b"1e400".to_vec()),
        Just(b"NaN".to_vec()),
        Just(b"true".to_vec()),
        Just(b"\xef\xbb\xbf".to_vec()),
        Just(b"\xff\xfe".to_vec()),
        (1usize..2000).prop_map(|n| b",".repeat(n)),
        (1usize..2000).prop_map(|n| b"\"".repeat(n)),
        prop::collection::vec(any::<u8>(), 0..16),
    ];
    prop::collection::vec(tok, 0..24).prop_map(|v| v.concat())
}

fn csv_codec() -> eventide_engine::codec::Codec {
    let spec = PipelineSpec::from_toml(
        "[input]\nformat = \"csv\"\ncsv = { columns = [\"t\", \"k\", \"value\", \"ok\", \"x\"] }\n\
         event_time = { field = \"t\" }\nfields = { k = \"string\", value = \"number\", ok = \"bool\" }\n\
         [[aggregation]]\nname = \"a\"\ngroup_by = [\"k\"]\nwindow = { type = \"global\" }\n\
         aggregates = [{ name = \"n\", fn = \"count\" }]\n",
    )
    .expect("spec");
    eventide_engine::codec::Codec::new(&spec)
}

proptest! {
    #![proptest_config(eventide_testkit::fuzz_config(256))]

    #[test]
    fn csv_decoder_never_panics(row in csv_bytes()) {
        let codec = csv_codec();
        match codec.decode(&row) {
            // A row that decodes has exactly the declared columns.
            Ok(_) => prop_assert!(eventide_engine::codec::csv::split(&row, b',', b'"', 5).is_ok_and(|f| f.len() == 5)),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn filter_parser_never_panics(src in grammar_text()) {
        let _ = Filter::parse(&src, &input(), &eventide_engine::expr::ExprLimits::default());
    }

    #[test]
    fn rule_condition_parser_never_panics(src in grammar_text()) {
        match Expr::compile(&src, &input()) {
            Ok(_) => {}
            // Columns are 1-based and point inside the text or just past it.
            Err(e) => prop_assert!(e.column >= 1 && e.column <= src.chars().count() + 1,
                "column {} of {} chars: {}", e.column, src.chars().count(), e.reason),
        }
    }

    #[test]
    fn rules_files_never_panic(when in grammar_text(), pattern in grammar_text()) {
        let q = |s: &str| s.replace('\'', "");
        let text = format!(
            "[[rule]]\nid = 'a'\nkey = ['k']\nwhen = '{}'\n[[rule]]\nid = 'b'\nkey = ['k']\npattern = '{}'\ndefine = {{ A = '{}' }}\n",
            q(&when), q(&pattern), q(&when)
        );
        let _ = parse_rules(&text, &input());
    }

    #[test]
    fn spec_parser_never_panics(filter in grammar_text(), noise in any::<String>(),
                                size in "[0-9]{1,25}(ms|s|m|h|d)?", slide in "[0-9]{1,25}(ms|s|m|h|d)?") {
        let text = format!(
            "[input]\nevent_time = {{ field = \"t\" }}\nfields = {{ value = \"number\", k = \"string\" }}\n\
             [[aggregation]]\nname = \"a\"\ngroup_by = [\"k\"]\nfilter = '{}'\n\
             window = {{ type = \"sliding\", size = \"{size}\", slide = \"{slide}\" }}\n\
             aggregates = [{{ name = \"n\", fn = \"count\" }}]\n",
            filter.replace('\'', "")
        );
        let _ = PipelineSpec::from_toml(&text);
        let _ = PipelineSpec::from_toml(&noise);
        let _ = PipelineSpec::from_toml(&format!("{text}{noise}"));
    }

    #[test]
    fn event_decoder_never_panics(line in line_bytes()) {
        let _ = Schema::new(&input()).parse_line(&line);
    }
}

/// A spec or rules file that carries a huge value (a 1 MB format name, field name, rule id
/// or a 1 MB line of TOML) gets an error of a few hundred bytes that still names the place
/// and keeps the hint at its end.
#[test]
fn errors_about_huge_values_stay_short() {
    let huge = "x".repeat(1 << 20);
    let specs = [
        format!("[input]\nformat = \"{huge}\"\nevent_time = {{ field = \"t\" }}\n"),
        format!("[input]\nevent_time = {{ field = \"t\" }}\nfields = {{ {huge} = \"nmber\" }}\n"),
        format!("[input]\nevent_time = {{ field = \"t\" }}\n{huge}\n"),
    ];
    for spec in &specs {
        let e = PipelineSpec::from_toml(spec)
            .expect_err("invalid")
            .to_string();
        assert!(e.len() < 1_000, "{} bytes: {}", e.len(), &e[..200]);
        assert!(e.contains("bytes left out"), "{e}");
    }
    let rules = format!("[[rule]]\nid = \"{huge}\"\nwhen = \"sum(\"\n");
    let e = parse_rules(&rules, &input())
        .expect_err("invalid")
        .to_string();
    assert!(e.len() < 1_000 && e.starts_with("rule[0]"), "{e}");
}

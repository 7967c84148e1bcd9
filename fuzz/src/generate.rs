//! Structured inputs: proptest strategies for hostile text and JSON values shaped like what
//! the targets send, and a helper to draw one value from a strategy.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::{Map, Number, Value};

/// One value of `strategy`.
pub fn draw<S: Strategy>(strategy: S, runner: &mut TestRunner) -> S::Value {
    strategy
        .new_tree(runner)
        .expect("a strategy without filters always yields a value")
        .current()
}

/// Text a hostile or careless user could put in a field: anything printable, control and
/// bidi characters, escape sequences, markup and template syntax, very long runs.
pub fn hostile_text() -> BoxedStrategy<String> {
    prop_oneof![
        any::<String>(),
        "\\PC{0,24}",
        "[\\x00-\\x1f\\x7f\u{200e}\u{202a}-\u{202e}\u{2066}-\u{2069}\u{feff}]{1,8}",
        prop::sample::select(vec![
            "",
            " ",
            "\u{1b}[2J\u{1b}[31mEVIL",
            "a\u{0}b\u{202e}",
            "\"}], \"x\": {\"",
            "</name><injected/>",
            "]]><!--",
            "&amp;&lt;&#0;",
            "${ user.password }",
            "{% raw %}",
            "{{ 7*7 }}",
            "\\",
            "\\u0000",
            "'; DROP TABLE accounts; --",
            "..%2f..%2f",
            "\u{10ffff}",
            "\u{d7ff}\u{e000}\u{fffe}",
        ])
        .prop_map(String::from),
        (
            prop::sample::select(vec!["a", "é", "\u{202e}", "<", "\""]),
            1000usize..5000
        )
            .prop_map(|(piece, n)| piece.repeat(n)),
    ]
    .boxed()
}

/// A JSON number, including the extremes.
fn number() -> BoxedStrategy<Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        Just(Value::from(0)),
        Just(Value::from(-1)),
        Just(Value::from(u64::MAX)),
        Just(Value::from(i64::MIN)),
    ]
    .boxed()
}

/// A JSON value of any shape, at most `depth` levels deep, whose object keys are mostly
/// taken from `keys` (so the mapping reads them) and sometimes hostile.
pub fn json_value(keys: &'static [&'static str], depth: u32) -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        hostile_text().prop_map(Value::String),
        prop::sample::select(vec![
            "1",
            "0",
            "-1",
            "18446744073709551616",
            " 42 ",
            "active",
            "INACTIVE",
            "true"
        ])
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(depth, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(keys), inner), 0..8)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
    .boxed()
}

/// An object key: one of `keys` mostly, else hostile text.
pub fn key(keys: &'static [&'static str]) -> BoxedStrategy<String> {
    prop_oneof![
        4 => prop::sample::select(keys.to_vec()).prop_map(String::from),
        1 => hostile_text(),
    ]
    .boxed()
}

/// An object holding mostly `keys`, each with a value of any shape: one record as a target
/// might send it.
pub fn record(keys: &'static [&'static str]) -> BoxedStrategy<Value> {
    prop::collection::vec((key(keys), json_value(keys, 3)), 0..12)
        .prop_map(|pairs| Value::Object(pairs.into_iter().collect()))
        .boxed()
}

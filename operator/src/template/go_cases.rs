//! The engine against outputs recorded from Go: `testdata/engine.json` (the template
//! language itself, with `<<` `>>` and `inputs` as ResourceSets use it) and
//! `testdata/sprig-*.out` (every function of the set, `{{ }}` delimiters, `.` a fixed
//! document), recorded with text/template, slim-sprig v3.0.0 and gosimple/slug v1.15.0.
//! A line of a `.out` file is `TEMPLATE<TAB>=> "OUTPUT"` (a JSON string) or
//! `TEMPLATE<TAB>=> ERR MESSAGE`. The lines skipped below are differences we know, each
//! list with its reason.

use std::collections::BTreeMap;

use super::{Value, exec, funcs, parse};

fn run(
    name: &str,
    text: &str,
    delims: (&str, &str),
    data: Value,
    values: &BTreeMap<String, Value>,
) -> Result<String, String> {
    let is_func = |n: &str| values.contains_key(n) || funcs::lookup(n).is_some();
    let parsed = parse::parse(name, text, delims, &is_func).map_err(|e| e.0)?;
    exec::execute(&parsed, data, values).map_err(|e| e.0)
}

#[test]
fn the_template_language_behaves_as_go() {
    let cases: Vec<serde_json::Value> =
        serde_json::from_str(include_str!("testdata/engine.json")).unwrap();
    let inputs = serde_json::json!({"name":"team1","n":2,"f":2.5,"b":true,"list":["a","b","c"],"m":{"k1":"v1","k2":{"x":1}},"empty":"","zero":0,"nul":null,"nested":{"a":{"b":{"c":"deep"}}},"nums":[3,1,2,3]});
    let values = BTreeMap::from([("inputs".to_string(), Value::from_json(&inputs))]);
    let mut failures = Vec::new();
    for case in &cases {
        let text = case["t"].as_str().unwrap();
        let got = run("resourceset", text, ("<<", ">>"), Value::Nil, &values);
        let want = match case.get("out") {
            Some(out) => Ok(out.as_str().unwrap().to_string()),
            None => Err(case["err"].as_str().unwrap().to_string()),
        };
        if got != want {
            failures.push(format!("{text:?}\n  go:   {want:?}\n  ours: {got:?}"));
        }
    }
    assert!(cases.len() > 80);
    assert!(
        failures.is_empty(),
        "{} of {}:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

fn sprig_data() -> Value {
    Value::from_json(
        &serde_json::json!({"m":{"a":1,"b":"x","c":{"d":[1,2.5,null,"s"]}},"l":[1,"two",3.5,null,true],"f":2.5,"i":42,"e":"","z":0,"n":null,"big":1e21,"s":"hello world","ns":3600000000000_i64,"neg":-61,"d90":90,"day":86400,"five":5,"one":1}),
    )
}

/// Go's `splitList` returns `[]string`, `until` `[]int`, `chunk` `[][]interface {}`, and
/// `index` of a string a `uint8`: a Value list is always `[]interface {}`, and Value has
/// no unsigned integers.
const SLICE_TYPES: &[&str] = &[
    r#"{{ typeOf (until 2) }}|{{ typeOf (chunk 1 (list 1)) }}"#,
    r#"{{ typeOf (index "abc" 0) }}|{{ index "abc" 0 }}"#,
    r#"{{ typeOf 1 }}|{{ typeOf .i }}|{{ typeOf 2.5 }}|{{ typeOf "s" }}|{{ typeOf nil }}|{{ typeOf .l }}|{{ typeOf .m }}|{{ typeOf true }}|{{ typeOf (list) }}|{{ typeOf (dict) }}|{{ typeOf (splitList "," "a") }}"#,
];

/// Errors text/template raises for literal operands (`expected string; found 1`,
/// `cannot assign nil to string`, `can't handle "x" for arg of type ...`) or that depend
/// on Go's static types (`got interface {}`, a `2.0` constant into an `int` parameter, an
/// `int` result into a `float64` parameter, which the library takes for a constant): the
/// library only sees values.
const LITERAL_ERRORS: &[&str] = &[
    r#"{{ ternary "a" "b" 1 }}"#,
    r#"{{ get "x" "b" }}"#,
    r#"{{ pluck "a" (dict "a" 1) "x" }}"#,
    r#"{{ pick (dict "a" 1) 1 }}"#,
    r#"{{ get .n "a" }}"#,
    r#"{{ unixEpoch 5 }}"#,
    r#"{{ upper nil }}"#,
    r#"{{ upper .n }}"#,
    r#"{{ upper 1.5 }}"#,
    r#"{{ indent "2" "x" }}"#,
    r#"{{ indent 2.0 "x" }}"#,
    r#"{{ hasKey .m 1 }}"#,
    r#"{{ plural "a" "b" nil }}"#,
    r#"{{ ternary 1 2 nil }}"#,
    r#"{{ seq "1" }}"#,
    r#"{{ round 1.5 "1" }}"#,
    r#"{{ round 1.55 1 "0.5" }}"#,
    r#"{{ round 1.55 1 (len "a") }}"#,
];

/// No time.Time in Value (toDate/mustToDate are errors); `ago` depends on the clock;
/// Go's `keys` order is random; Rust strings cannot hold the invalid UTF-8 `"\xff"`;
/// a template parse error of the probe itself.
const OTHER: &[&str] = &[
    r#"{{ toDate "2006-01-02" "2024-03-05" }}"#,
    r#"{{ toDate "2006-01-02" "bad" }}"#,
    r#"{{ mustToDate "2006-01-02" "bad" }}"#,
    r#"{{ unixEpoch (mustToDate "2006-01-02T15:04:05Z07:00" "2024-03-05T10:00:00Z") }}"#,
    r#"{{ mustDateModify "1h" (mustToDate "2006-01-02T15:04:05Z07:00" "2024-03-05T10:00:00Z") }}"#,
    r#"{{ mustDateModify "bad" (mustToDate "2006-01-02T15:04:05Z07:00" "2024-03-05T10:00:00Z") }}"#,
    r#"{{ ago .i }}"#,
    r#"{{ keys (dict "b" 1 "a" 2) (dict "c" 3) }}|{{ keys }}"#,
    r#"{{ quote "tab\there" "nl\nx" "\x00\x7f" "é☺" "\u00ad" "\U0001F600" "\xff" }}"#,
    r#"{{ split "/" "a/b/c" }}|{{ (split "/" "a/b").\_1 }}"#,
];

fn replay(golden: &str) -> (usize, Vec<String>) {
    let skips: Vec<&str> = [SLICE_TYPES, LITERAL_ERRORS, OTHER].concat();
    let mut failures = Vec::new();
    let mut count = 0;
    for line in golden.lines().filter(|l| !l.trim().is_empty()) {
        let (text, expected) = line.split_once("\t=> ").expect("TEMPLATE\t=> RESULT");
        if skips.contains(&text) {
            continue;
        }
        count += 1;
        let want = match expected.strip_prefix("ERR ") {
            Some(message) => Err(message.to_string()),
            None => Ok(serde_json::from_str::<String>(expected).expect("a JSON string")),
        };
        let got = run("t", text, ("{{", "}}"), sprig_data(), &BTreeMap::new());
        if got != want {
            failures.push(format!("{text}\n  go:   {want:?}\n  ours: {got:?}"));
        }
    }
    (count, failures)
}

#[test]
fn every_function_behaves_as_go() {
    let files = [
        include_str!("testdata/sprig-1.out"),
        include_str!("testdata/sprig-2.out"),
        include_str!("testdata/sprig-3.out"),
        include_str!("testdata/sprig-4.out"),
        include_str!("testdata/sprig-5.out"),
        include_str!("testdata/sprig-6.out"),
    ];
    let mut total = 0;
    let mut failures = Vec::new();
    for file in files {
        let (count, mut f) = replay(file);
        total += count;
        failures.append(&mut f);
    }
    assert!(total > 250, "{total} cases");
    assert!(
        failures.is_empty(),
        "{} of {total}:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Every skipped line is still in the files.
    let all: String = files.concat();
    for skip in [SLICE_TYPES, LITERAL_ERRORS, OTHER].concat() {
        assert!(all.contains(&format!("{skip}\t=> ")), "stale skip: {skip}");
    }
}

#[test]
fn the_function_set_is_the_incumbents() {
    let mut names: Vec<&str> = funcs::names();
    names.sort();
    names.dedup();
    // slim-sprig's hermetic set (156) and fluxop's additions slugify, toYaml, mustToYaml.
    assert_eq!(names.len(), 159 - 1, "{names:?}");
    for name in &names {
        assert!(funcs::lookup(name).is_some(), "{name}");
    }
    for absent in [
        "semver", "merge", "now", "env", "required", "tpl", "include", "lookup", "fromYaml",
        "toToml",
    ] {
        assert!(funcs::lookup(absent).is_none(), "{absent}");
    }
}

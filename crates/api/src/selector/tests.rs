//! Label selector tests: parsing, canonical strings, matching and every error message.

use super::*;
use serde_json::json;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Parses `input` and prints its canonical form, or the error.
fn check(input: &str, expected: &str) {
    let got = match Selector::parse(input) {
        Ok(s) => s.to_string(),
        Err(e) => format!("error: {e}"),
    };
    assert_eq!(got, expected, "input {input:?}");
}

#[test]
fn parses_like_upstream() {
    for (input, expected) in [
        ("", ""),
        ("x=a", "x=a"),
        ("x=a,y=b,z=c", "x=a,y=b,z=c"),
        ("z=c,x=a", "x=a,z=c"),
        ("x==a", "x==a"),
        ("x!=a", "x!=a"),
        ("x", "x"),
        ("!x", "!x"),
        (" x , !y ", "x,!y"),
        ("x=", "x="),
        ("x= ", "x="),
        ("x=,z= ", "x=,z="),
        ("x in (a,b)", "x in (a,b)"),
        ("x in (b,a,b)", "x in (a,b)"),
        ("x notin (a)", "x notin (a)"),
        ("x in ()", "x in ()"),
        ("x in (a,,b)", "x in (,a,b)"),
        ("x in (,a)", "x in (,a)"),
        ("x in (in,notin)", "x in (in,notin)"),
        ("in in (in)", "in in (in)"),
        ("x>1", "x>1"),
        ("x<10,y>0", "x<10,y>0"),
        ("example.com/app=web", "example.com/app=web"),
        ("a.b-c_d=E.f-G_h", "a.b-c_d=E.f-G_h"),
        (
            "x=a\ty=b",
            "error: found 'y', expected: ',' or 'end of string'",
        ),
    ] {
        check(input, expected);
    }
}

#[test]
fn every_error_message() {
    for (input, expected) in [
        (
            "x=a||y=b",
            "error: unable to parse requirement: values[0][x]: Invalid value: \"a||y\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue' or 'my_value' or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
        ),
        ("x==a==b", "error: found '==', expected: ',' or 'end of string'"),
        ("!x=a", "error: found '=', expected: ',' or 'end of string'"),
        (
            "x<a",
            "error: unable to parse requirement: values[0]: Invalid value: \"a\": for 'Gt', 'Lt' operators, the value must be an integer",
        ),
        (
            "x>-1",
            "error: unable to parse requirement: values[0][x]: Invalid value: \"-1\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue' or 'my_value' or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
        ),
        ("x=a,", "error: found '', expected: identifier after ','"),
        ("x=a,,y=b", "error: found ',', expected: identifier after ','"),
        ("=a", "error: found '=', expected: !, identifier, or 'end of string'"),
        (",", "error: found ',', expected: !, identifier, or 'end of string'"),
        ("!", "error: unable to parse requirement: found '', expected: identifier"),
        ("!!x", "error: unable to parse requirement: found '!', expected: identifier"),
        (
            "x y",
            "error: unable to parse requirement: found 'y', expected: in, notin, =, ==, !=, gt, lt",
        ),
        ("x in a", "error: unable to parse requirement: found 'a' expected: '('"),
        ("x in (a", "error: unable to parse requirement: found '', expected: ',' or ')'"),
        ("x in (a b)", "error: unable to parse requirement: found 'b', expected: ',' or ')'"),
        (
            "x in (=)",
            "error: unable to parse requirement: found '=', expected: ',', ')' or identifier",
        ),
        ("x in (,=)", "error: unable to parse requirement: found '=', expected: ',', or identifier"),
        ("x=(", "error: unable to parse requirement: found '(', expected: identifier"),
        (
            "x_=a",
            "error: unable to parse requirement: <nil>: Invalid value: \"x_\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName' or 'my.name' or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
        ),
        (
            "-x",
            "error: unable to parse requirement: <nil>: Invalid value: \"-x\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName' or 'my.name' or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
        ),
        (
            "a/b/c",
            "error: unable to parse requirement: <nil>: Invalid value: \"a/b/c\": a valid label key must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName' or 'my.name' or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
        ),
        (
            "/a",
            "error: unable to parse requirement: <nil>: Invalid value: \"/a\": prefix part must be non-empty",
        ),
        (
            "Ex.com/a",
            "error: unable to parse requirement: <nil>: Invalid value: \"Ex.com/a\": prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        ),
        (
            "a/",
            "error: unable to parse requirement: <nil>: Invalid value: \"a/\": name part must be non-empty; name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName' or 'my.name' or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
        ),
    ] {
        check(input, expected);
    }
    let long = "a".repeat(64);
    check(
        &format!("{long}=b"),
        &format!("error: unable to parse requirement: <nil>: Invalid value: \"{long}\": name part must be no more than 63 bytes"),
    );
    check(
        &format!("a={long}"),
        &format!("error: unable to parse requirement: values[0][a]: Invalid value: \"{long}\": must be no more than 63 bytes"),
    );
}

#[test]
fn the_first_bad_value_names_its_index_after_sorting() {
    check(
        "x in (b,-a)",
        "error: unable to parse requirement: values[0][x]: Invalid value: \"-a\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue' or 'my_value' or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
    );
}

#[test]
fn matches_like_upstream() {
    let l = labels(&[("app", "web"), ("tier", "front"), ("size", "5")]);
    for (selector, want) in [
        ("", true),
        ("app=web", true),
        ("app==web", true),
        ("app=db", false),
        ("app!=db", true),
        ("missing!=x", true),
        ("app in (db,web)", true),
        ("app notin (db,web)", false),
        ("missing notin (a)", true),
        ("missing in (a)", false),
        ("app", true),
        ("!app", false),
        ("!missing", true),
        ("size>4", true),
        ("size>5", false),
        ("size<6", true),
        ("app>1", false),
        ("missing<1", false),
        ("app=web,tier=back", false),
        ("app=web,tier=front", true),
    ] {
        let s = Selector::parse(selector).unwrap();
        assert_eq!(s.matches(&l), want, "selector {selector:?}");
    }
    let object = json!({"metadata": {"labels": {"app": "web", "n": 1}}});
    assert!(Selector::parse("app=web").unwrap().matches_object(&object));
    assert!(!Selector::parse("n").unwrap().matches_object(&object));
    assert!(Selector::parse("!x").unwrap().matches_object(&json!({})));
    assert!(!Selector::nothing().matches(&l));
    assert!(Selector::everything().matches(&l));
}

#[test]
fn exact_match_and_set() {
    let s = Selector::parse("a=1,b in (2),c in (3,4),d!=5").unwrap();
    assert_eq!(s.requires_exact_match("a"), Some("1"));
    assert_eq!(s.requires_exact_match("b"), Some("2"));
    assert_eq!(s.requires_exact_match("c"), None);
    assert_eq!(s.requires_exact_match("d"), None);
    assert_eq!(s.requires_exact_match("e"), None);
    let s = Selector::from_set([("b", "2"), ("a", "1")]);
    assert_eq!(s.to_string(), "a=1,b=2");
}

#[test]
fn from_label_selector_objects() {
    let s = Selector::from_label_selector(&json!({
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["b", "a"]},
            {"key": "canary", "operator": "DoesNotExist"},
            {"key": "env", "operator": "NotIn", "values": ["prod"]},
            {"key": "zone", "operator": "Exists"}
        ]
    }))
    .unwrap();
    assert_eq!(
        s.to_string(),
        "app=web,!canary,env notin (prod),tier in (a,b),zone"
    );
    assert!(s.matches(&labels(&[("app", "web"), ("tier", "a"), ("zone", "z")])));
    assert!(!s.matches(&labels(&[("app", "web"), ("tier", "a")])));

    assert!(Selector::from_label_selector(&json!(null))
        .unwrap()
        .is_nothing());
    assert!(Selector::from_label_selector(&json!({}))
        .unwrap()
        .is_everything());

    for (input, expected) in [
        (
            json!({"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]}),
            "\"Equals\" is not a valid label selector operator",
        ),
        (
            json!({"matchExpressions": [{"key": "a", "operator": "In"}]}),
            "values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty",
        ),
        (
            json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
            "values: Invalid value: [\"x\"]: values set must be empty for exists and does not exist",
        ),
        (
            json!({"matchLabels": {"a b": "c"}}),
            "key: Invalid value: \"a b\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName' or 'my.name' or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
        ),
        (
            json!({"matchExpressions": [{"key": "-a", "operator": "In", "values": []}]}),
            "[key: Invalid value: \"-a\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName' or 'my.name' or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]'), values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty]",
        ),
        (json!("app=web"), "invalid label selector: expected an object, found \"app=web\""),
    ] {
        let err = Selector::from_label_selector(&input).unwrap_err();
        assert_eq!(err.to_string(), expected, "input {input}");
    }
}

#[test]
fn typed_label_selectors_read_like_their_json() {
    for input in [
        json!({}),
        json!({"matchLabels": {"app": "web"}}),
        json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["b", "a"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "env", "operator": "NotIn", "values": ["prod"]},
                {"key": "zone", "operator": "Exists"}
            ]
        }),
        json!({"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]}),
        json!({"matchExpressions": [{"key": "a", "operator": "In"}]}),
        json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
        json!({"matchLabels": {"a b": "c"}}),
    ] {
        let typed: TypedLabelSelector = serde_json::from_value(input.clone()).unwrap();
        assert_eq!(
            Selector::from_typed(Some(&typed)).map_err(|err| err.to_string()),
            Selector::from_label_selector(&input).map_err(|err| err.to_string()),
            "input {input}"
        );
    }
    assert!(Selector::from_typed(None).unwrap().is_nothing());
    let empty = TypedLabelSelector::default();
    assert!(Selector::from_typed(Some(&empty)).unwrap().is_everything());
}

#[test]
fn formats_like_kubectl() {
    assert_eq!(format_label_selector(&json!(null)), "<none>");
    assert_eq!(format_label_selector(&json!({})), "<none>");
    assert_eq!(
        format_label_selector(&json!({"matchLabels": {"b": "2", "a": "1"}})),
        "a=1,b=2"
    );
    assert_eq!(
        format_label_selector(&json!({"matchExpressions": [{"key": "a", "operator": "Bad"}]})),
        "<error>"
    );
    assert_eq!(format_labels(None), "<none>");
    assert_eq!(format_labels(Some(&json!({"z": "1", "a": "2"}))), "a=2,z=1");
}

#[test]
fn go_quoting() {
    assert_eq!(go_quote("a\"b\\c\n\u{1}é"), "\"a\\\"b\\\\c\\n\\x01é\"");
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn random_text_never_panics(text in "\\PC{0,40}") {
            let _ = Selector::parse(&text);
        }

        #[test]
        fn selector_alphabet_never_panics(text in "[a-z0-9=!(),<> \t./_-]{0,30}") {
            if let Ok(s) = Selector::parse(&text) {
                // The canonical form parses back to the same selector.
                let again = Selector::parse(&s.to_string());
                prop_assert_eq!(again.as_ref().ok(), Some(&s), "canonical {}", s);
            }
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let text = String::from_utf8_lossy(&bytes);
            let _ = Selector::parse(&text);
        }
    }
}

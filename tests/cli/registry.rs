//! Every connector crate's registrations survive linking, in the binary and here.

use ferry_core::registry::Registry;

use crate::common::*;

const EXPECTED: &[(&str, &[&str])] = &[
    ("hubspot", &["companies", "contacts", "deals", "owners"]),
    ("instantly", &["accounts", "campaigns", "daily_analytics", "emails", "leads", "overview", "steps"]),
    ("synthetic", &["events", "orders", "users"]),
];
const TRANSFORMS: &[&str] = &["add_fields", "drop_fields", "filter", "hash_fields", "rename_fields"];
const SINKS: &[&str] = &["jsonl", "postgres", "sqlite"];

#[test]
fn registry_lists_every_connector_stream_transform_and_sink() {
    let r = Registry::global().expect("registry builds");
    for (connector, streams) in EXPECTED {
        r.connector(connector).unwrap_or_else(|_| panic!("connector {connector} missing from the registry"));
        let names: Vec<&str> = r.streams_of(connector).iter().map(|s| s.name).collect();
        assert_eq!(&names, streams, "streams of {connector}");
    }
    for t in TRANSFORMS {
        assert!(r.transforms.contains_key(t), "transform {t} missing");
    }
    for s in SINKS {
        assert!(r.sinks.contains_key(s), "sink {s} missing");
    }
}

#[test]
fn binary_lists_every_connector_stream_transform_and_sink() {
    let s = Scratch::new();
    let o = s.run(&["connectors"]);
    expect_code(&o, 0);
    let (out, _) = text(&o);
    for (connector, streams) in EXPECTED {
        assert!(out.contains(&format!("connector {connector}:")), "{connector} missing:\n{out}");
        for st in *streams {
            assert!(out.lines().any(|l| l.trim_start().starts_with(st)), "stream {st} missing:\n{out}");
        }
    }
    // Each stream's description, after its connector's table.
    for about in ["search on lastmodifieddate", "Unibox emails, incremental on timestamp_created", "generated users"] {
        assert!(out.contains(about), "{about} missing:\n{out}");
    }
    for name in TRANSFORMS.iter().chain(SINKS) {
        assert!(out.lines().any(|l| l.trim_start().starts_with(name)), "{name} missing:\n{out}");
    }
}

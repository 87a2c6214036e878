//! Bad input gets a clear message and a non-zero exit, never a panic.

use crate::common::*;

fn check(s: &Scratch, toml: &str, code: i32, needles: &[&str]) {
    s.write("bad.toml", toml);
    let o = s.run(&["sync", "bad.toml"]);
    expect_code(&o, code);
    let (_, err) = text(&o);
    for n in needles {
        assert!(err.contains(n), "expected `{n}` in:\n{err}");
    }
}

const OK_HEAD: &str = "[pipeline]\nname = \"b\"\n[source]\nconnector = \"synthetic\"\nrecords = 5\n";

#[test]
fn malformed_toml() {
    check(&Scratch::new(), "[pipeline\nname = 1", 2, &["bad.toml", "line 1"]);
}

#[test]
fn unknown_key_names_key_and_line() {
    let s = Scratch::new();
    check(&s, &format!("{OK_HEAD}recordz = 3\n"), 2, &["recordz", "line 6"]);
    check(
        &s,
        "[pipeline]\nname = \"b\"\nconcurency = 2\n[source]\nconnector = \"synthetic\"\n",
        2,
        &["concurency", "line 3"],
    );
}

#[test]
fn wrong_type() {
    check(
        &Scratch::new(),
        "[pipeline]\nname = \"b\"\n[source]\nconnector = \"synthetic\"\nrecords = \"many\"\n",
        2,
        &["records", "invalid type"],
    );
}

#[test]
fn missing_env_var_is_named() {
    check(
        &Scratch::new(),
        &format!("{OK_HEAD}[sink]\ntype = \"sqlite\"\npath = \"${{FERRY_NOT_SET_ANYWHERE}}/x.db\"\n"),
        2,
        &["FERRY_NOT_SET_ANYWHERE", "sink.path"],
    );
}

#[test]
fn unknown_names() {
    let s = Scratch::new();
    check(
        &s,
        "[pipeline]\nname = \"b\"\n[source]\nconnector = \"salesforce\"\n",
        2,
        &["unknown connector `salesforce`", "synthetic"],
    );
    check(&s, &format!("{OK_HEAD}[sink]\ntype = \"mysql\"\n"), 2, &["unknown sink `mysql`", "sqlite"]);
    check(
        &s,
        &format!("{OK_HEAD}[[transforms]]\ntype = \"uppercase\"\n"),
        2,
        &["unknown transform `uppercase`", "hash_fields"],
    );
    check(
        &s,
        &format!("{OK_HEAD}[[transforms]]\ntype = \"drop_fields\"\nstreams = [\"userz\"]\nfields = [\"a\"]\n"),
        2,
        &["unknown stream `userz`"],
    );
    s.write("ok.toml", OK_HEAD);
    let o = s.run(&["sync", "ok.toml", "--streams", "users,nope"]);
    expect_code(&o, 2);
    assert!(text(&o).1.contains("unknown stream `nope`"));
    let o = s.run(&["sync", "no-such-connector"]);
    expect_code(&o, 2);
    let o = s.run(&["sync", "missing.toml"]);
    expect_code(&o, 2);
    assert!(text(&o).1.contains("cannot read pipeline file missing.toml"));
}

#[test]
fn unwritable_database_path() {
    let s = Scratch::new();
    s.write("blocker", "a file where a directory should be");
    check(
        &s,
        &format!("{OK_HEAD}[sink]\ntype = \"sqlite\"\npath = \"blocker/x.db\"\n"),
        1,
        &["cannot open SQLite database blocker/x.db"],
    );
}

#[test]
fn bad_flag_values_exit_2_naming_the_flag() {
    let s = Scratch::new();
    s.write("ok.toml", OK_HEAD);
    for (args, needle) in [
        (vec!["--from=2025-13-01"], "--from=2025-13-01"),
        (vec!["--last=7x"], "--last=7x"),
        (vec!["--all", "--from=2025-10-01"], "--all"),
        (vec!["--last=7d", "--from=2025-10-01"], "--last"),
        (vec!["--from=2025-10-20", "--to=2025-10-01"], "--to"),
        (vec!["--rollback=2025-10-01", "--last=3d"], "--rollback"),
    ] {
        let mut a = vec!["sync", "ok.toml"];
        a.extend(args);
        let o = s.run(&a);
        expect_code(&o, 2);
        assert!(text(&o).1.contains(needle), "{a:?}: {}", text(&o).1);
    }
}

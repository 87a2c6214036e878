//! Records and the merge that never loses old data.

use serde_json::{Map, Value};

/// One item from a source: a JSON object.
pub type Record = Map<String, Value>;

/// Merges `new` into `old` in place, the way every sink stores an upsert.
///
/// For two objects every key of `new` wins, recursively for nested objects, and keys
/// only in `old` are kept. Arrays and scalars are replaced. An explicit `null` in `new`
/// is stored as `null` (it does not delete the key). Returns whether `old` changed.
pub fn merge(old: &mut Value, new: Value) -> bool {
    match (old, new) {
        (Value::Object(old), Value::Object(new)) => merge_objects(old, new),
        (old, new) => {
            if *old == new {
                false
            } else {
                *old = new;
                true
            }
        }
    }
}

/// [`merge`] for two objects.
pub fn merge_objects(old: &mut Map<String, Value>, new: Map<String, Value>) -> bool {
    let mut changed = false;
    for (key, value) in new {
        match old.get_mut(&key) {
            Some(existing) => changed |= merge(existing, value),
            None => {
                old.insert(key, value);
                changed = true;
            }
        }
    }
    changed
}

/// Looks a value up by a dotted path (`"a.b.c"`); `""` is the record itself.
pub fn lookup<'a>(record: &'a Record, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let first = parts.next()?;
    let mut current = record.get(first)?;
    for part in parts {
        current = current.as_object()?.get(part)?;
    }
    Some(current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn nested_keys_only_in_old_are_kept_and_null_is_stored() {
        let mut old = json!({"a": 1, "n": {"x": 1, "y": 2}, "arr": [1, 2], "gone": "kept"});
        let changed = merge(&mut old, json!({"a": 2, "n": {"y": 3, "z": null}, "arr": [3], "new": null}));
        assert!(changed);
        assert_eq!(old, json!({"a": 2, "n": {"x": 1, "y": 3, "z": null}, "arr": [3], "gone": "kept", "new": null}));
    }

    #[test]
    fn merging_the_same_record_reports_unchanged() {
        let mut old = json!({"a": 1, "n": {"x": [1, {"k": true}]}});
        assert!(!merge(&mut old.clone(), old.clone()));
        assert!(!merge(&mut old, json!({"n": {}})));
    }

    #[test]
    fn object_replaces_scalar_and_scalar_replaces_object() {
        let mut old = json!({"a": 1});
        assert!(merge(&mut old, json!({"a": {"b": 1}})));
        assert!(merge(&mut old, json!({"a": "s"})));
        assert_eq!(old, json!({"a": "s"}));
    }

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (-5i64..5).prop_map(Value::from),
            "[a-c]{0,2}".prop_map(Value::from),
            prop::collection::vec((-2i64..2).prop_map(Value::from), 0..3).prop_map(Value::from),
        ]
    }

    fn object() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(3, 24, 4, |inner| {
            prop::collection::btree_map("[a-d]", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect()))
        })
    }

    fn records() -> impl Strategy<Value = Vec<Map<String, Value>>> {
        prop::collection::vec(
            prop::collection::btree_map("[a-e]", object(), 0..5).prop_map(|m| m.into_iter().collect()),
            1..8,
        )
    }

    /// Every path to a leaf (or an empty object) in `v`.
    fn paths(v: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, child) in m {
                    prefix.push(k.clone());
                    paths(child, prefix, out);
                    prefix.pop();
                }
            }
            _ => out.push(prefix.clone()),
        }
    }

    fn has_key_path(v: &Value, path: &[String]) -> bool {
        let mut cur = v;
        for p in path {
            match cur.get(p) {
                Some(next) => cur = next,
                None => return false,
            }
        }
        true
    }

    proptest! {
        /// No key is ever lost across any sequence of partial records: every top-level key
        /// any record had is present at the end, and each nested key path survives unless
        /// a later record replaced its parent with a non-object.
        #[test]
        fn no_key_is_ever_lost(seq in records()) {
            let mut stored = Value::Object(Map::new());
            let mut seen: Vec<String> = Vec::new();
            for rec in &seq {
                seen.extend(rec.keys().cloned());
                let before = stored.clone();
                merge(&mut stored, Value::Object(rec.clone()));
                // Every key path of the old value survives unless the new record replaced
                // a prefix of it with a non-object (an explicit replacement, not a loss).
                let mut old_paths = Vec::new();
                paths(&before, &mut Vec::new(), &mut old_paths);
                for p in old_paths {
                    let replaced = (1..=p.len()).any(|n| {
                        let mut cur = Some(&Value::Object(rec.clone()));
                        for k in &p[..n] {
                            cur = cur.and_then(|c| c.get(k));
                        }
                        matches!(cur, Some(v) if !v.is_object())
                    });
                    prop_assert!(replaced || has_key_path(&stored, &p), "lost {:?}", p);
                }
                // Every key of the new record is present with the new record's leaves.
                let mut new_paths = Vec::new();
                paths(&Value::Object(rec.clone()), &mut Vec::new(), &mut new_paths);
                for p in new_paths {
                    prop_assert!(has_key_path(&stored, &p), "new key {:?} missing", p);
                }
            }
            for k in seen {
                prop_assert!(stored.get(&k).is_some());
            }
        }

        /// Merging a record into itself, or into a merge result that already contains it,
        /// reports unchanged.
        #[test]
        fn merging_again_is_unchanged(seq in records()) {
            let mut stored = Value::Object(Map::new());
            for rec in &seq {
                merge(&mut stored, Value::Object(rec.clone()));
                let snapshot = stored.clone();
                prop_assert!(!merge(&mut stored, Value::Object(rec.clone())));
                prop_assert_eq!(&stored, &snapshot);
                prop_assert!(!merge(&mut stored, snapshot.clone()));
            }
        }
    }
}

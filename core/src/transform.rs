//! The `Transform` trait and the built-in transforms.

use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::config::Settings;
use crate::error::{ConfigError, TransformError};
use crate::record::Record;
use crate::registry::TransformDescriptor;

/// A per-record step between source and sink. Returning `Ok(None)` drops the record.
pub trait Transform: Send + Sync {
    /// Transforms one record.
    fn apply(&self, record: Record) -> Result<Option<Record>, TransformError>;
}

/// Removes `path` (dotted) from a record, returning the value.
fn take_path(record: &mut Record, path: &str) -> Option<Value> {
    match path.rsplit_once('.') {
        None => record.remove(path),
        Some((parent, leaf)) => {
            let mut cur = record.get_mut(parent.split('.').next()?)?;
            for part in parent.split('.').skip(1) {
                cur = cur.as_object_mut()?.get_mut(part)?;
            }
            cur.as_object_mut()?.remove(leaf)
        }
    }
}

fn get_path_mut<'a>(record: &'a mut Record, path: &str) -> Option<&'a mut Value> {
    let mut parts = path.split('.');
    let mut cur = record.get_mut(parts.next()?)?;
    for part in parts {
        cur = cur.as_object_mut()?.get_mut(part)?;
    }
    Some(cur)
}

// ---- rename_fields -----------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RenameConfig {
    /// old name -> new name (top-level fields).
    fields: toml::Table,
}

struct RenameFields(Vec<(String, String)>);

impl Transform for RenameFields {
    fn apply(&self, mut record: Record) -> Result<Option<Record>, TransformError> {
        for (from, to) in &self.0 {
            if let Some(v) = record.remove(from) {
                record.insert(to.clone(), v);
            }
        }
        Ok(Some(record))
    }
}

fn build_rename(s: &Settings) -> Result<Box<dyn Transform>, ConfigError> {
    let c: RenameConfig = s.parse()?;
    let mut pairs = Vec::new();
    for (from, to) in c.fields {
        let to = to
            .as_str()
            .ok_or_else(|| ConfigError::Other(format!("rename_fields: new name for `{from}` must be a string")))?;
        pairs.push((from, to.to_owned()));
    }
    Ok(Box::new(RenameFields(pairs)))
}

// ---- drop_fields -------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldsConfig {
    fields: Vec<String>,
}

struct DropFields(Vec<String>);

impl Transform for DropFields {
    fn apply(&self, mut record: Record) -> Result<Option<Record>, TransformError> {
        for f in &self.0 {
            take_path(&mut record, f);
        }
        Ok(Some(record))
    }
}

/// An empty `fields` list would make a transform that does nothing, silently.
fn require_fields(s: &Settings, kind: &str, fields: &[String]) -> Result<(), ConfigError> {
    if fields.is_empty() {
        return Err(s.invalid(
            "fields",
            format!("{kind}: fields = [] names no field: list at least one, or remove the transform"),
        ));
    }
    Ok(())
}

fn build_drop(s: &Settings) -> Result<Box<dyn Transform>, ConfigError> {
    let c: FieldsConfig = s.parse()?;
    require_fields(s, "drop_fields", &c.fields)?;
    Ok(Box::new(DropFields(c.fields)))
}

// ---- hash_fields -------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HashConfig {
    fields: Vec<String>,
    #[serde(default)]
    salt: Option<crate::secret::Secret>,
}

struct HashFields {
    fields: Vec<String>,
    salt: String,
}

impl Transform for HashFields {
    fn apply(&self, mut record: Record) -> Result<Option<Record>, TransformError> {
        for f in &self.fields {
            if let Some(v) = get_path_mut(&mut record, f) {
                let text = match &mut *v {
                    Value::Null => continue,
                    Value::String(s) => std::mem::take(s),
                    other => other.to_string(),
                };
                let mut h = Sha256::new();
                h.update(self.salt.as_bytes());
                h.update(text.as_bytes());
                *v = Value::String(hex::encode(h.finalize()));
            }
        }
        Ok(Some(record))
    }
}

fn build_hash(s: &Settings) -> Result<Box<dyn Transform>, ConfigError> {
    let c: HashConfig = s.parse()?;
    require_fields(s, "hash_fields", &c.fields)?;
    Ok(Box::new(HashFields { fields: c.fields, salt: c.salt.map(|s| s.expose().to_owned()).unwrap_or_default() }))
}

// ---- add_fields --------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddConfig {
    fields: toml::Table,
}

struct AddFields(Vec<(String, Value)>);

impl Transform for AddFields {
    fn apply(&self, mut record: Record) -> Result<Option<Record>, TransformError> {
        for (k, v) in &self.0 {
            record.insert(k.clone(), v.clone());
        }
        Ok(Some(record))
    }
}

fn build_add(s: &Settings) -> Result<Box<dyn Transform>, ConfigError> {
    let c: AddConfig = s.parse()?;
    let fields = c
        .fields
        .into_iter()
        .map(|(k, v)| {
            serde_json::to_value(v)
                .map(|v| (k.clone(), v))
                .map_err(|e| ConfigError::Other(format!("add_fields: `{k}`: {e}")))
        })
        .collect::<Result<_, _>>()?;
    Ok(Box::new(AddFields(fields)))
}

// ---- filter ------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FilterConfig {
    field: String,
    #[serde(default)]
    equals: Option<toml::Value>,
    #[serde(default)]
    not_equals: Option<toml::Value>,
    #[serde(default)]
    exists: Option<bool>,
}

enum Predicate {
    Equals(Value),
    NotEquals(Value),
    Exists(bool),
}

struct Filter {
    field: String,
    predicate: Predicate,
}

impl Transform for Filter {
    fn apply(&self, record: Record) -> Result<Option<Record>, TransformError> {
        let value = crate::record::lookup(&record, &self.field);
        let keep = match &self.predicate {
            Predicate::Equals(v) => value == Some(v),
            Predicate::NotEquals(v) => value != Some(v),
            Predicate::Exists(want) => value.is_some_and(|v| !v.is_null()) == *want,
        };
        Ok(keep.then_some(record))
    }
}

fn build_filter(s: &Settings) -> Result<Box<dyn Transform>, ConfigError> {
    let c: FilterConfig = s.parse()?;
    let to_json = |v: toml::Value| serde_json::to_value(v).map_err(|e| ConfigError::Other(format!("filter: {e}")));
    let predicate = match (c.equals, c.not_equals, c.exists) {
        (Some(v), None, None) => Predicate::Equals(to_json(v)?),
        (None, Some(v), None) => Predicate::NotEquals(to_json(v)?),
        (None, None, Some(b)) => Predicate::Exists(b),
        _ => {
            return Err(s.invalid("field", "filter: set exactly one of `equals`, `not_equals` or `exists`".into()));
        }
    };
    Ok(Box::new(Filter { field: c.field, predicate }))
}

inventory::submit! {
    TransformDescriptor { name: "rename_fields", description: "rename top-level fields: fields = { old = \"new\" }", build: build_rename }
}
inventory::submit! {
    TransformDescriptor { name: "drop_fields", description: "remove fields (dotted paths): fields = [\"a\", \"b.c\"]", build: build_drop }
}
inventory::submit! {
    TransformDescriptor { name: "hash_fields", description: "replace fields with their SHA-256 hex (PII): fields = [\"email\"], optional salt", build: build_hash }
}
inventory::submit! {
    TransformDescriptor { name: "add_fields", description: "add constant fields: fields = { source = \"crm\" }", build: build_add }
}
inventory::submit! {
    TransformDescriptor { name: "filter", description: "keep records where `field` equals / not_equals a value, or exists = true|false", build: build_filter }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(text: &str) -> Settings {
        Settings::from_table("transforms#1", text.parse::<toml::Table>().unwrap())
    }

    fn rec(v: Value) -> Record {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn builtins_do_what_they_say() {
        let r = rec(json!({"a": 1, "email": "x@y.z", "n": {"b": 2, "c": 3}}));
        let out = build_rename(&settings("fields = { a = \"alpha\" }")).unwrap().apply(r.clone()).unwrap().unwrap();
        assert_eq!(out.get("alpha"), Some(&json!(1)));
        assert!(!out.contains_key("a"));

        let out = build_drop(&settings("fields = [\"n.b\", \"a\"]")).unwrap().apply(r.clone()).unwrap().unwrap();
        assert_eq!(Value::Object(out), json!({"email": "x@y.z", "n": {"c": 3}}));

        let out = build_hash(&settings("fields = [\"email\"]")).unwrap().apply(r.clone()).unwrap().unwrap();
        assert_eq!(out["email"], json!("b8e30d1addc62fa00ee5c1c6d01b5e006963c1b178e6b35458daf6c44875468d"));

        let out = build_add(&settings("fields = { src = \"crm\" }")).unwrap().apply(r.clone()).unwrap().unwrap();
        assert_eq!(out["src"], json!("crm"));

        let f = build_filter(&settings("field = \"n.b\"\nequals = 2")).unwrap();
        assert!(f.apply(r.clone()).unwrap().is_some());
        let f = build_filter(&settings("field = \"n.b\"\nnot_equals = 2")).unwrap();
        assert!(f.apply(r.clone()).unwrap().is_none());
        let f = build_filter(&settings("field = \"missing\"\nexists = false")).unwrap();
        assert!(f.apply(r).unwrap().is_some());
    }

    #[test]
    fn filter_needs_exactly_one_predicate() {
        assert!(build_filter(&settings("field = \"a\"")).is_err());
        assert!(build_filter(&settings("field = \"a\"\nequals = 1\nexists = true")).is_err());
    }
}

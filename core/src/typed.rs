//! Typed columns: converting a record's JSON values to column values, shared by every
//! SQL sink so they accept and refuse exactly the same records.

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use serde_json::Value;

use crate::descriptor::{Column, SqlType, StreamDescriptor};
use crate::record::{Record, lookup};

/// A column value ready to bind.
#[derive(Debug, Clone, PartialEq)]
pub enum TypedValue {
    /// SQL NULL.
    Null,
    /// Text (also timestamps and dates, in their source form).
    Text(String),
    /// Integer.
    Integer(i64),
    /// Double.
    Real(f64),
    /// Boolean.
    Bool(bool),
}

impl TypedValue {
    /// Display form for keys in messages and JSONL.
    pub fn to_key_text(&self) -> String {
        match self {
            TypedValue::Null => "null".into(),
            TypedValue::Text(s) => s.clone(),
            TypedValue::Integer(i) => i.to_string(),
            TypedValue::Real(f) => f.to_string(),
            TypedValue::Bool(b) => b.to_string(),
        }
    }
}

/// Parses the timestamp forms sources send (RFC 3339, `YYYY-MM-DD HH:MM:SS[.f]`,
/// `YYYY-MM-DDTHH:MM:SS[.f]` as UTC, or a bare date at midnight UTC).
pub fn parse_timestamp(s: &str) -> Option<DateTime<chrono::Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&chrono::Utc));
    }
    for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f%#z"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.and_utc());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)).map(|t| t.and_utc())
}

fn wrong(col: &Column, v: &Value) -> String {
    let shown = match v {
        Value::String(s) if s.len() > 40 => format!("\"{}...\"", &s[..s.floor_char_boundary(40)]),
        other => {
            let t = other.to_string();
            if t.len() > 40 { format!("{}...", &t[..t.floor_char_boundary(40)]) } else { t }
        }
    };
    format!("column `{}` ({}) cannot hold {shown} from `{}`", col.name, col.sql_type.name(), col.path)
}

/// Converts one JSON value for a column. `None` input (absent) gives `Null`.
pub fn convert(col: &Column, value: Option<&Value>) -> Result<TypedValue, String> {
    let v = match value {
        None | Some(Value::Null) => return Ok(TypedValue::Null),
        Some(v) => v,
    };
    let out = match col.sql_type {
        SqlType::Text => match v {
            Value::String(s) => TypedValue::Text(s.clone()),
            other => TypedValue::Text(other.to_string()),
        },
        SqlType::Integer => match v {
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    TypedValue::Integer(i)
                } else if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15) {
                    TypedValue::Integer(f as i64)
                } else {
                    return Err(wrong(col, v));
                }
            }
            Value::Bool(b) => TypedValue::Integer(i64::from(*b)),
            Value::String(s) if s.trim().is_empty() => TypedValue::Null,
            Value::String(s) => TypedValue::Integer(s.trim().parse().map_err(|_| wrong(col, v))?),
            _ => return Err(wrong(col, v)),
        },
        SqlType::Real => match v {
            Value::Number(n) => TypedValue::Real(n.as_f64().ok_or_else(|| wrong(col, v))?),
            Value::String(s) if s.trim().is_empty() => TypedValue::Null,
            Value::String(s) => TypedValue::Real(s.trim().parse().map_err(|_| wrong(col, v))?),
            _ => return Err(wrong(col, v)),
        },
        SqlType::Boolean => match v {
            Value::Bool(b) => TypedValue::Bool(*b),
            Value::Number(n) if n.as_i64() == Some(0) => TypedValue::Bool(false),
            Value::Number(n) if n.as_i64() == Some(1) => TypedValue::Bool(true),
            Value::String(s) if s.eq_ignore_ascii_case("true") => TypedValue::Bool(true),
            Value::String(s) if s.eq_ignore_ascii_case("false") => TypedValue::Bool(false),
            _ => return Err(wrong(col, v)),
        },
        SqlType::Timestamp => match v {
            // Real APIs send "" for "no date"; that is a NULL, not a bad record.
            Value::String(s) if s.is_empty() => TypedValue::Null,
            Value::String(s) if parse_timestamp(s).is_some() => TypedValue::Text(s.clone()),
            _ => return Err(wrong(col, v)),
        },
        SqlType::Date => match v {
            Value::String(s) if s.is_empty() => TypedValue::Null,
            Value::String(s) => match parse_timestamp(s) {
                Some(t) => TypedValue::Text(t.date_naive().to_string()),
                None => return Err(wrong(col, v)),
            },
            _ => return Err(wrong(col, v)),
        },
    };
    Ok(out)
}

/// A record's key and column values, checked against its stream.
#[derive(Debug)]
pub struct RowValues {
    /// Key values, in key order (never null).
    pub key: Vec<TypedValue>,
    /// Non-key typed columns in descriptor order (`None` when the path is absent).
    pub columns: Vec<Option<TypedValue>>,
}

/// The key of a record, or why it has none.
pub fn key_of(stream: &StreamDescriptor, record: &Record) -> Result<Vec<TypedValue>, String> {
    stream
        .key_columns()
        .map(|c| match convert(c, lookup(record, c.path))? {
            TypedValue::Null => Err(format!("primary key `{}` (from `{}`) is missing or null", c.name, c.path)),
            v => Ok(v),
        })
        .collect()
}

/// The non-key columns of a stream, in order.
pub fn value_columns(stream: &StreamDescriptor) -> impl Iterator<Item = &Column> {
    stream.columns.iter().filter(|c| !stream.primary_key.contains(&c.name))
}

/// Extracts key and typed columns.
pub fn row_values(stream: &StreamDescriptor, record: &Record) -> Result<RowValues, String> {
    let key = key_of(stream, record)?;
    let columns = column_values(stream, record)?;
    Ok(RowValues { key, columns })
}

/// Extracts the typed non-key columns (`None` where the path is absent).
pub fn column_values(stream: &StreamDescriptor, record: &Record) -> Result<Vec<Option<TypedValue>>, String> {
    let mut columns = Vec::with_capacity(stream.columns.len());
    for c in value_columns(stream) {
        match lookup(record, c.path) {
            None => columns.push(None),
            Some(v) => {
                let t = convert(c, Some(v))?;
                if c.required && t == TypedValue::Null {
                    return Err(format!("column `{}` (from `{}`) is required", c.name, c.path));
                }
                columns.push(Some(t));
            }
        }
    }
    Ok(columns)
}

/// Joins key values for messages (`a/b`).
pub fn key_text(key: &[TypedValue]) -> String {
    key.iter().map(TypedValue::to_key_text).collect::<Vec<_>>().join("/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const C: Column = Column::new("n", SqlType::Integer, "n");

    #[test]
    fn conversions_are_lenient_where_real_data_is_odd() {
        assert_eq!(convert(&C, Some(&json!(3.0))).unwrap(), TypedValue::Integer(3));
        assert_eq!(convert(&C, Some(&json!("7"))).unwrap(), TypedValue::Integer(7));
        assert!(convert(&C, Some(&json!(3.5))).is_err());
        assert!(convert(&C, Some(&json!("abc"))).is_err());
        let ts = Column::new("t", SqlType::Timestamp, "t");
        assert_eq!(convert(&ts, Some(&json!(""))).unwrap(), TypedValue::Null);
        assert!(convert(&ts, Some(&json!("2025-10-01T12:00:00.000Z"))).is_ok());
        assert!(convert(&ts, Some(&json!("yesterday"))).is_err());
        let d = Column::new("d", SqlType::Date, "d");
        assert_eq!(convert(&d, Some(&json!("2025-10-01T12:00:00Z"))).unwrap(), TypedValue::Text("2025-10-01".into()));
    }
}

//! SQL identifiers: validation and quoting shared by every SQL sink.

/// Columns every stream table has, which descriptors may not redeclare.
pub const RESERVED_COLUMNS: &[&str] =
    &["raw_json", "sync_batch_id", "first_sync_batch_id", "synced_at", "created_at", "updated_at"];

/// Accepts names of 1..=63 characters, starting with a letter or `_`, made of ASCII
/// letters, digits, `_`, `-`, `.` and spaces (the odd ones are quoted on use).
pub fn validate(name: &str) -> Result<(), String> {
    let ok_len = (1..=63).contains(&name.len());
    let ok_first = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let ok_rest = name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ' '));
    if ok_len && ok_first && ok_rest {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid name: use 1 to 63 letters, digits, `_`, `-`, `.` or spaces, starting with a letter or `_`"
        ))
    }
}

/// Double-quotes an identifier for SQL (SQLite and Postgres agree on this form).
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_names_are_quoted_and_bad_ones_rejected() {
        assert_eq!(quote("my table"), "\"my table\"");
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
        assert!(validate("order").is_ok());
        assert!(validate("weird-name.v2").is_ok());
        assert!(validate("x; DROP TABLE y").is_err());
        assert!(validate("1abc").is_err());
        assert!(validate("").is_err());
    }
}

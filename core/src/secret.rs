//! Secrets: a type that never prints its value, and redaction of known secrets
//! from any text that leaves the process (logs, tables, errors).

use std::fmt;
use std::sync::{OnceLock, RwLock};

use serde::{Deserialize, Deserializer};

static KNOWN: OnceLock<RwLock<Vec<String>>> = OnceLock::new();

fn known() -> &'static RwLock<Vec<String>> {
    KNOWN.get_or_init(|| RwLock::new(Vec::new()))
}

/// Remembers a secret value so that [`redact`] hides it everywhere.
/// Values shorter than 4 characters are not registered (they would redact noise).
pub fn register(value: &str) {
    if value.len() < 4 {
        return;
    }
    let mut list = known().write().unwrap_or_else(|e| e.into_inner());
    // A server may echo the key back changed: upper- or lower-cased, or percent-encoded
    // (as it was sent in a URL or form). Every form is hidden.
    let forms = [value.to_owned(), value.to_uppercase(), value.to_lowercase(), percent_encoded(value)];
    for form in forms {
        if !list.contains(&form) {
            list.push(form);
        }
    }
    // Longest first, so a secret containing another is replaced whole.
    list.sort_by_key(|v| std::cmp::Reverse(v.len()));
}

/// `value` with every byte outside the unreserved set percent-encoded (upper-case hex).
fn percent_encoded(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Replaces every registered secret in `text` with `***`.
pub fn redact(text: &str) -> String {
    let list = known().read().unwrap_or_else(|e| e.into_inner());
    let mut out = std::borrow::Cow::Borrowed(text);
    for secret in list.iter() {
        if out.contains(secret.as_str()) {
            out = std::borrow::Cow::Owned(out.replace(secret.as_str(), "***"));
        }
    }
    out.into_owned()
}

/// A secret setting (API key, token, password). `Debug` and `Display` print `***`;
/// the value is registered for redaction as soon as it is loaded.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps and registers a value.
    pub fn new(value: impl Into<String>) -> Self {
        let value = value.into();
        register(&value);
        Secret(value)
    }

    /// The value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = String::deserialize(d)?;
        // A key pasted with its line ending would be sent as is and fail as a network
        // fault; say what is wrong instead (without the value).
        if value.chars().any(char::is_control) {
            return Err(serde::de::Error::custom(
                "the secret contains a control character (a line ending or tab pasted with it?): remove it",
            ));
        }
        Ok(Secret::new(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints_and_is_redacted() {
        let s = Secret::new("sk-test-ABCDEF123");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        assert_eq!(redact("key=sk-test-ABCDEF123&x"), "key=***&x");
        assert_eq!(s.expose(), "sk-test-ABCDEF123");
    }

    #[test]
    fn an_echoed_key_is_redacted_in_any_case_and_percent_encoded() {
        let _ = Secret::new("Key+With/Sl=ash9");
        let echoed = "invalid key KEY+WITH/SL=ASH9 (key+with/sl=ash9) sent as Key%2BWith%2FSl%3Dash9";
        let out = redact(echoed);
        assert!(!out.to_lowercase().contains("key+with") && !out.contains("%2BWith"), "{out}");
        assert_eq!(out.matches("***").count(), 3, "{out}");
    }
}

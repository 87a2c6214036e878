//! Secrets: a type that never prints its value, and redaction of known secrets
//! from any text that leaves the process (logs, tables, errors).

use std::fmt;
use std::sync::RwLock;

use serde::{Deserialize, Deserializer};

/// The registered secrets, as patterns, longest first.
static KNOWN: RwLock<Vec<(usize, regex_lite::Regex)>> = RwLock::new(Vec::new());

/// Remembers a secret value so that [`redact`] hides it everywhere.
/// Values shorter than 4 characters are not registered (they would redact noise).
pub fn register(value: &str) {
    if value.len() < 4 {
        return;
    }
    let Ok(pattern) = regex_lite::Regex::new(&pattern(value)) else {
        return;
    };
    let mut list = KNOWN.write().unwrap_or_else(|e| e.into_inner());
    if list.iter().any(|(_, p)| p.as_str() == pattern.as_str()) {
        return;
    }
    list.push((value.len(), pattern));
    // Longest first, so a secret containing another is replaced whole.
    list.sort_by_key(|(len, _)| std::cmp::Reverse(*len));
}

/// A pattern matching `value` as a server may echo it back: in any letter case, and with
/// any character percent-encoded (upper- or lower-case hex, as every URL and form encoder
/// chooses its own set of characters to escape) or, for a space, written `+`.
fn pattern(value: &str) -> String {
    let mut out = String::from("(?i)");
    for c in value.chars() {
        let mut utf8 = [0u8; 4];
        let escaped: String = c.encode_utf8(&mut utf8).bytes().map(|b| format!("%{b:02X}")).collect();
        let literal = regex_lite::escape(c.encode_utf8(&mut utf8));
        out.push_str(&format!("(?:{literal}|{escaped}{})", if c == ' ' { "|\\+" } else { "" }));
    }
    out
}

/// Replaces every registered secret in `text` with `***`.
pub fn redact(text: &str) -> String {
    let list = KNOWN.read().unwrap_or_else(|e| e.into_inner());
    let mut out = std::borrow::Cow::Borrowed(text);
    for (_, secret) in list.iter() {
        let replaced = match secret.replace_all(&out, "***") {
            std::borrow::Cow::Owned(r) => Some(r),
            std::borrow::Cow::Borrowed(_) => None,
        };
        if let Some(r) = replaced {
            out = std::borrow::Cow::Owned(r);
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
        // Each encoder escapes its own set of characters, in its own hex case; a form
        // writes a space as `+`. Text around the key is kept.
        let _ = Secret::new("a b~c/d€e");
        for form in ["a%20b~c/d€e", "a+b%7Ec%2fd%E2%82%ACe", "A+B~C%2FD%e2%82%acE", "a%20b%7ec/d€e"] {
            assert_eq!(redact(&format!("<{form}>")), "<***>", "{form}");
        }
        assert_eq!(redact("a b~c/d"), "a b~c/d");
    }
}

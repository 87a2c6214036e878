//! Time windows: `--from/--to/--last` bounds and duration parsing.

use chrono::{DateTime, Utc};

/// Bounds for date-grained streams in one run. Both ends are optional.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeWindow {
    /// Inclusive lower bound.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive upper bound.
    pub to: Option<DateTime<Utc>>,
}

impl TimeWindow {
    /// Whether this run is bounded at all.
    pub fn is_bounded(&self) -> bool {
        self.from.is_some() || self.to.is_some()
    }
}

/// Parses a duration such as `30s`, `15min`, `2h`, `30d` or `1w`.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("`{text}` is not a duration: write a number and a unit, e.g. 30d"))?;
    let secs = match unit {
        "s" => 1,
        "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => {
            return Err(format!("`{text}`: unknown unit `{unit}`; use s, min, h, d or w"));
        }
    };
    Ok(std::time::Duration::from_secs(n.saturating_mul(secs)))
}

/// Parses `YYYY-MM-DD` (midnight UTC) or an ISO 8601 / RFC 3339 timestamp (converted to
/// UTC; without an offset it is taken as UTC).
pub fn parse_date(text: &str) -> Result<DateTime<Utc>, String> {
    let t = text.trim();
    if let Ok(d) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    if let Ok(ts) = DateTime::parse_from_rfc3339(t) {
        return Ok(ts.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(ts) = chrono::NaiveDateTime::parse_from_str(t, fmt) {
            return Ok(ts.and_utc());
        }
    }
    Err(format!("`{text}` is not a date: use YYYY-MM-DD or an ISO 8601 timestamp such as 2025-10-20T08:00:00Z"))
}

/// Parses `--last` values: a number and a unit `h`, `d`, `w` or `m` (calendar months),
/// returning the start of the window ending at `now`.
pub fn parse_last(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u32 = num
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("`{text}` is not a period: write a positive number and a unit, e.g. 7d"))?;
    let start = match unit {
        "h" => now.checked_sub_signed(chrono::Duration::hours(i64::from(n))),
        "d" => now.checked_sub_signed(chrono::Duration::days(i64::from(n))),
        "w" => now.checked_sub_signed(chrono::Duration::weeks(i64::from(n))),
        "m" => now.checked_sub_months(chrono::Months::new(n)),
        _ => {
            return Err(format!("`{text}`: unknown unit `{unit}`; use h, d, w or m (months)"));
        }
    };
    start.ok_or_else(|| format!("`{text}` reaches too far back"))
}

/// One time flag of `ferry sync`, for checking it against what a stream honours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimeFlag {
    /// `--rollback`: reset saved cursors to a date, then sync forward.
    Rollback,
    /// `--from`: the window's lower bound.
    From,
    /// `--to`: the window's upper bound.
    To,
    /// `--last`: a window ending now.
    Last,
}

impl TimeFlag {
    /// The flag as typed (`--rollback`).
    pub fn as_str(self) -> &'static str {
        match self {
            TimeFlag::Rollback => "--rollback",
            TimeFlag::From => "--from",
            TimeFlag::To => "--to",
            TimeFlag::Last => "--last",
        }
    }

    /// Whether the flag bounds the run's window (`--from`, `--to`, `--last`) rather than
    /// resetting cursors.
    pub fn is_window(self) -> bool {
        self != TimeFlag::Rollback
    }
}

impl std::fmt::Display for TimeFlag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The time flags of `ferry sync`, as typed.
#[derive(Debug, Clone, Default)]
pub struct TimeFlags {
    /// `--all`.
    pub all: bool,
    /// `--from`.
    pub from: Option<String>,
    /// `--to`.
    pub to: Option<String>,
    /// `--last`.
    pub last: Option<String>,
    /// `--rollback`.
    pub rollback: Option<String>,
}

/// What the time flags mean for one run.
#[derive(Debug, Clone, PartialEq)]
pub struct TimePlan {
    /// Full (`--all`) or incremental.
    pub mode: crate::source::RunMode,
    /// Bounds of the date-grained streams.
    pub window: TimeWindow,
    /// Reset saved cursors to this date first.
    pub rollback: Option<DateTime<Utc>>,
    /// The flags given (not `--all`), in the order `--rollback`, `--from`, `--to`, `--last`.
    pub flags: Vec<TimeFlag>,
}

impl TimeFlags {
    /// Validates the combination and values; errors name the flag.
    pub fn resolve(&self, now: DateTime<Utc>) -> Result<TimePlan, String> {
        let flag = |name: &str, v: &str, e: String| format!("{name}={v}: {e}");
        if self.all && (self.from.is_some() || self.to.is_some() || self.last.is_some() || self.rollback.is_some()) {
            return Err(
                "--all refetches everything and cannot be combined with --from, --to, --last or --rollback".into()
            );
        }
        if self.last.is_some() && (self.from.is_some() || self.to.is_some()) {
            return Err("--last sets its own window and cannot be combined with --from or --to".into());
        }
        if self.rollback.is_some() && (self.from.is_some() || self.to.is_some() || self.last.is_some()) {
            return Err(
                "--rollback resets cursors and syncs forward; it cannot be combined with --from, --to or --last".into(),
            );
        }
        let from = self.from.as_deref().map(|v| parse_date(v).map_err(|e| flag("--from", v, e))).transpose()?;
        // A bare date as --to includes that day: the bound is the next midnight.
        let to = self
            .to
            .as_deref()
            .map(|v| {
                let t = parse_date(v).map_err(|e| flag("--to", v, e))?;
                Ok::<_, String>(if v.trim().len() == 10 { t + chrono::Duration::days(1) } else { t })
            })
            .transpose()?;
        let last = self.last.as_deref().map(|v| parse_last(v, now).map_err(|e| flag("--last", v, e))).transpose()?;
        let rollback =
            self.rollback.as_deref().map(|v| parse_date(v).map_err(|e| flag("--rollback", v, e))).transpose()?;
        if let (Some(f), Some(t)) = (from, to)
            && t <= f
        {
            return Err(format!(
                "--to={} is not after --from={}",
                self.to.as_deref().unwrap_or(""),
                self.from.as_deref().unwrap_or("")
            ));
        }
        for (name, value, v) in [("--from", &self.from, from), ("--rollback", &self.rollback, rollback)] {
            if let Some(v) = v
                && v > now
            {
                return Err(format!("{name}={} is in the future", value.as_deref().unwrap_or("")));
            }
        }
        let window = match last {
            Some(start) => TimeWindow { from: Some(start), to: None },
            None => TimeWindow { from, to },
        };
        let given = [
            (TimeFlag::Rollback, &self.rollback),
            (TimeFlag::From, &self.from),
            (TimeFlag::To, &self.to),
            (TimeFlag::Last, &self.last),
        ];
        Ok(TimePlan {
            mode: if self.all { crate::source::RunMode::Full } else { crate::source::RunMode::Incremental },
            window,
            rollback,
            flags: given.into_iter().filter(|(_, v)| v.is_some()).map(|(f, _)| f).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn now() -> DateTime<Utc> {
        parse_date("2025-11-01T12:00:00Z").unwrap()
    }

    #[test]
    fn flags_combinations() {
        let f = |all, from: Option<&str>, to: Option<&str>, last: Option<&str>, rb: Option<&str>| TimeFlags {
            all,
            from: from.map(Into::into),
            to: to.map(Into::into),
            last: last.map(Into::into),
            rollback: rb.map(Into::into),
        };
        assert!(f(true, Some("2025-10-01"), None, None, None).resolve(now()).unwrap_err().contains("--all"));
        assert!(f(false, Some("2025-10-01"), None, Some("7d"), None).resolve(now()).unwrap_err().contains("--last"));
        assert!(
            f(false, Some("2025-10-20"), Some("2025-10-01"), None, None).resolve(now()).unwrap_err().contains("--to")
        );
        assert!(
            f(false, Some("2025-13-01"), None, None, None).resolve(now()).unwrap_err().contains("--from=2025-13-01")
        );
        assert!(f(false, None, None, Some("7x"), None).resolve(now()).unwrap_err().contains("--last=7x"));
        let p = f(false, None, None, Some("7d"), None).resolve(now()).unwrap();
        assert_eq!(p.window.from, Some(parse_date("2025-10-25T12:00:00Z").unwrap()));
        let p = f(false, None, None, Some("1m"), None).resolve(now()).unwrap();
        assert_eq!(p.window.from, Some(parse_date("2025-10-01T12:00:00Z").unwrap()));
        let p = f(false, None, None, None, Some("2025-10-25")).resolve(now()).unwrap();
        assert_eq!(p.rollback, Some(parse_date("2025-10-25").unwrap()));
        assert_eq!(p.flags, [TimeFlag::Rollback]);
        let p = f(false, Some("2025-10-01"), Some("2025-10-05"), None, None).resolve(now()).unwrap();
        assert_eq!(p.flags, [TimeFlag::From, TimeFlag::To]);
        assert!(f(true, None, None, None, None).resolve(now()).unwrap().flags.is_empty());
        assert_eq!(f(true, None, None, None, None).resolve(now()).unwrap().mode, crate::source::RunMode::Full);
    }

    proptest! {
        #[test]
        fn every_valid_date_round_trips(y in 2000i32..2100, m in 1u32..=12, d in 1u32..=28) {
            let text = format!("{y:04}-{m:02}-{d:02}");
            let t = parse_date(&text).unwrap();
            prop_assert_eq!(t.date_naive().to_string(), text);
        }

        #[test]
        fn last_is_always_before_now(n in 1u32..500, unit in prop::sample::select(vec!["h", "d", "w", "m"])) {
            let start = parse_last(&format!("{n}{unit}"), now()).unwrap();
            prop_assert!(start < now());
        }

        #[test]
        fn garbage_never_panics(s in "\\PC{0,12}") {
            let _ = parse_date(&s);
            let _ = parse_last(&s, now());
            let _ = parse_duration(&s);
        }
    }
}

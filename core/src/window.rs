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

/// The one duration grammar of ferry (`--last`, `--older-than`, `[pipeline] timeout`):
/// a positive whole number and a unit: `s` seconds, `min` minutes, `h` hours, `d` days,
/// `w` weeks, `m` months (calendar months where a date is computed, 30 days otherwise).
pub const DURATION_UNITS: &str = "s, min, h, d, w or m (months)";

/// The longest period any flag or setting accepts: 100 years.
const MAX_SECS: u64 = 100 * 365 * 86_400;

/// A parsed period: a count of a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    n: u32,
    unit: Unit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Seconds,
    Minutes,
    Hours,
    Days,
    Weeks,
    Months,
}

impl Unit {
    fn secs(self) -> u64 {
        match self {
            Unit::Seconds => 1,
            Unit::Minutes => 60,
            Unit::Hours => 3600,
            Unit::Days => 86_400,
            Unit::Weeks => 7 * 86_400,
            Unit::Months => 30 * 86_400,
        }
    }
}

impl Period {
    /// Parses `7d`, `90min`, `1m`; zero, a missing or unknown unit and anything longer
    /// than 100 years are errors that say what to write.
    pub fn parse(text: &str) -> Result<Period, String> {
        let t = text.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        if num.is_empty() {
            return Err(format!("`{text}` is not a duration: write a number and a unit, e.g. 7d ({DURATION_UNITS})"));
        }
        let unit = match unit.trim() {
            "s" => Unit::Seconds,
            "min" => Unit::Minutes,
            "h" => Unit::Hours,
            "d" => Unit::Days,
            "w" => Unit::Weeks,
            "m" => Unit::Months,
            "" => return Err(format!("`{text}` has no unit: write e.g. {num}d ({DURATION_UNITS})")),
            other => return Err(format!("`{text}`: unknown unit `{other}`; use {DURATION_UNITS}")),
        };
        let too_long = || format!("`{text}` is too long: at most 100 years (36500d)");
        let n: u64 = num.parse().map_err(|_| too_long())?;
        if n == 0 {
            return Err(format!("`{text}` is zero: use a positive duration"));
        }
        if n.saturating_mul(unit.secs()) > MAX_SECS {
            return Err(too_long());
        }
        Ok(Period { n: n as u32, unit })
    }

    /// As a fixed length (a month is 30 days).
    pub fn duration(self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.n) * self.unit.secs())
    }

    /// The instant this period before `now` (calendar months).
    pub fn before(self, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
        let start = match self.unit {
            Unit::Months => now.checked_sub_months(chrono::Months::new(self.n)),
            _ => chrono::Duration::from_std(self.duration()).ok().and_then(|d| now.checked_sub_signed(d)),
        };
        start.ok_or_else(|| "reaches too far back".to_owned())
    }
}

/// Parses a duration in ferry's one grammar (see [`DURATION_UNITS`]).
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    Period::parse(text).map(Period::duration)
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

/// Parses `--last` values in the one duration grammar, returning the start of the window
/// ending at `now`.
pub fn parse_last(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    Period::parse(text)?.before(now).map_err(|e| format!("`{text}` {e}"))
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
    fn one_grammar_with_clear_errors() {
        assert_eq!(parse_duration("90min").unwrap().as_secs(), 5400);
        assert_eq!(parse_duration("1m").unwrap().as_secs(), 30 * 86_400);
        assert_eq!(parse_duration("2w").unwrap().as_secs(), 14 * 86_400);
        assert!(parse_duration("7").unwrap_err().contains("has no unit: write e.g. 7d"));
        assert!(parse_duration("0d").unwrap_err().contains("zero"));
        assert!(parse_duration("0s").unwrap_err().contains("zero"));
        assert!(parse_duration("99999999999d").unwrap_err().contains("too long"));
        assert!(parse_duration("200000000000d").unwrap_err().contains("too long"));
        assert!(parse_duration("36501d").unwrap_err().contains("too long"));
        assert!(parse_duration("36500d").is_ok());
        assert!(parse_last("7", now()).unwrap_err().contains("no unit"));
        assert_eq!(parse_last("30min", now()).unwrap(), parse_date("2025-11-01T11:30:00Z").unwrap());
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
        fn any_number_and_unit_parses_or_says_why(n in any::<u64>(), unit in "[a-z]{0,4}") {
            let text = format!("{n}{unit}");
            match parse_duration(&text) {
                Ok(d) => prop_assert!(d.as_secs() > 0 && d.as_secs() <= MAX_SECS),
                Err(e) => prop_assert!(e.contains(&text)),
            }
            let _ = parse_last(&text, now());
        }

        #[test]
        fn garbage_never_panics(s in "\\PC{0,12}") {
            let _ = parse_date(&s);
            let _ = parse_last(&s, now());
            let _ = parse_duration(&s);
        }
    }
}

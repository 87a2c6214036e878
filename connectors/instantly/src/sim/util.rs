//! Small helpers shared by the simulator: UUID construction and formatting,
//! timestamps in the API's format, a cheap deterministic mixer for deriving
//! per-item fields from an id, and the word pools used for names.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Serialize, Serializer};

/// Milliseconds in one day.
pub(crate) const DAY_MS: i64 = 86_400_000;

/// Leads created before this instant (2025-10-15T00:00:00Z) carry random UUIDv4
/// ids, later ones time-ordered UUIDv7 ids.
pub(crate) const V7_CUTOFF_MS: i64 = 1_760_486_400_000;

/// A random-looking UUIDv4 built from 128 random bits.
pub(crate) fn uuid_v4(bits: u128) -> u128 {
    (bits & !(0xF << 76) & !(0b11 << 62)) | (0x4 << 76) | (0b10 << 62)
}

/// A UUIDv7 whose 48-bit prefix is `ms` (so ids sort by creation time).
pub(crate) fn uuid_v7(ms: i64, bits: u128) -> u128 {
    let ts = (ms.max(0) as u128) & 0xFFFF_FFFF_FFFF;
    let rand_a = (bits >> 64) & 0xFFF;
    let rand_b = bits & 0x3FFF_FFFF_FFFF_FFFF;
    (ts << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
}

/// The id a record created at `ms` gets: v4 before [`V7_CUTOFF_MS`], v7 after.
pub(crate) fn record_id(ms: i64, bits: u128) -> u128 {
    if ms < V7_CUTOFF_MS { uuid_v4(bits) } else { uuid_v7(ms, bits) }
}

/// Writes the canonical lowercase `8-4-4-4-12` form of `id` into `buf`.
pub(crate) fn uuid_into(id: u128, buf: &mut [u8; 36]) -> &str {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    const POS: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
    let bytes = id.to_be_bytes();
    for (byte, &at) in bytes.iter().zip(POS.iter()) {
        buf[at] = HEX[usize::from(byte >> 4)];
        buf[at + 1] = HEX[usize::from(byte & 0xF)];
    }
    for dash in [8, 13, 18, 23] {
        buf[dash] = b'-';
    }
    // Only ASCII hex digits and dashes were written.
    std::str::from_utf8(buf).unwrap_or_default()
}

/// The canonical string form of `id`.
pub(crate) fn uuid_str(id: u128) -> String {
    let mut buf = [0u8; 36];
    uuid_into(id, &mut buf).to_owned()
}

/// Parses the canonical `8-4-4-4-12` form (any case) back into a `u128`.
pub(crate) fn parse_uuid(s: &str) -> Option<u128> {
    if s.len() != 36 {
        return None;
    }
    let mut v: u128 = 0;
    for (i, c) in s.chars().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            if c != '-' {
                return None;
            }
            continue;
        }
        v = (v << 4) | u128::from(c.to_digit(16)?);
    }
    Some(v)
}

/// An ISO-8601 UTC timestamp with milliseconds, e.g. `2026-03-05T23:09:47.110Z`.
pub(crate) fn ts(ms: i64) -> String {
    let b = ts_bytes(ms);
    std::str::from_utf8(&b).map(str::to_owned).unwrap_or_default()
}

/// [`ts`] into a stack buffer (formatted by hand: it runs for every
/// timestamp of every served item).
fn ts_bytes(ms: i64) -> [u8; 24] {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let mut b = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut v: i64| {
        for i in (at..at + width).rev() {
            b[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, y.clamp(0, 9999));
    put(5, 2, m);
    put(8, 2, d);
    put(11, 2, sod / 3600);
    put(14, 2, sod % 3600 / 60);
    put(17, 2, sod % 60);
    put(20, 3, milli);
    b
}

/// A timestamp field that serializes like [`ts`] without allocating.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ts(pub i64);

impl Serialize for Ts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let b = ts_bytes(self.0);
        s.serialize_str(std::str::from_utf8(&b).unwrap_or_default())
    }
}

/// An id field that serializes like [`uuid_str`] without allocating.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Id(pub u128);

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 36];
        s.serialize_str(uuid_into(self.0, &mut buf))
    }
}

/// Proleptic Gregorian `(year, month, day)` of a day count since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The UTC calendar date containing `ms`.
pub(crate) fn date_of(ms: i64) -> NaiveDate {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default().date_naive()
}

/// Milliseconds of UTC midnight starting `date`.
pub(crate) fn midnight_ms(date: NaiveDate) -> i64 {
    date.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc().timestamp_millis()
}

/// Parses an ISO-8601 instant (RFC 3339, or without offset meaning UTC).
pub(crate) fn parse_instant(s: &str) -> Option<i64> {
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.timestamp_millis());
    }
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok().map(|n| n.and_utc().timestamp_millis())
}

/// Parses an analytics date parameter: `YYYY-MM-DD` (UTC midnight) or a full
/// ISO-8601 timestamp.
pub(crate) fn parse_date_param(s: &str) -> Option<i64> {
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Some(midnight_ms(d));
    }
    parse_instant(s)
}

/// SplitMix64: a tiny, fast, deterministic generator used to derive the
/// fields of an item from its stored seed, so items need not be stored whole.
#[derive(Clone, Debug)]
pub(crate) struct Mix(u64);

impl Mix {
    /// Seeds from a 128-bit id (its halves folded together).
    pub(crate) fn from_id(id: u128, salt: u64) -> Self {
        let mut m = Mix((id as u64) ^ ((id >> 64) as u64).rotate_left(17) ^ salt);
        m.next();
        m
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((self.next() as u128 * n.max(1) as u128) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

pub(crate) const FIRST_NAMES: &[&str] = &[
    "Jane", "John", "Alex", "Maria", "Chen", "Priya", "Liam", "Olivia", "Noah", "Emma", "Lucas", "Sofia", "Mateo",
    "Aisha", "Yuki", "Omar", "Hannah", "Jonas", "Elena", "Marco", "Fatima", "Daniel", "Grace", "Ivan", "Chloe",
    "Samuel", "Leila", "Tomas", "Nina", "Ethan", "Zoe", "Ravi", "Anna", "Felix", "Maya", "Oscar", "Julia", "Kenji",
    "Sara", "Victor",
];

pub(crate) const LAST_NAMES: &[&str] = &[
    "Doe",
    "Smith",
    "Garcia",
    "Müller",
    "Nguyen",
    "Patel",
    "Kim",
    "Rossi",
    "Johnson",
    "Silva",
    "Kowalski",
    "Tanaka",
    "Brown",
    "Dubois",
    "Haddad",
    "Jensen",
    "Novak",
    "O'Brien",
    "Costa",
    "Schmidt",
    "Lee",
    "Martin",
    "Andersson",
    "Fischer",
    "Lopez",
    "Wang",
    "Moreau",
    "Ivanova",
    "Clark",
    "Becker",
    "Santos",
    "Yilmaz",
    "Murphy",
    "Hughes",
    "Kaur",
    "Weber",
    "Rahman",
    "Svensson",
    "Lambert",
    "Okafor",
];

pub(crate) const COMPANY_A: &[&str] = &[
    "Northwind",
    "Bluepeak",
    "Acme",
    "Brightline",
    "Cedar",
    "Summit",
    "Ironwood",
    "Lumen",
    "Harbor",
    "Vertex",
    "Quill",
    "Redwood",
    "Atlas",
    "Nimbus",
    "Orbit",
    "Pioneer",
    "Silverleaf",
    "Tidal",
    "Granite",
    "Helix",
];

pub(crate) const COMPANY_B: &[&str] = &[
    "Analytics",
    "Labs",
    "Fitness",
    "Logistics",
    "Dental",
    "Software",
    "Capital",
    "Media",
    "Robotics",
    "Health",
    "Foods",
    "Legal",
    "Energy",
    "Studio",
    "Partners",
    "Systems",
];

pub(crate) const TLDS: &[&str] = &["com", "io", "co", "net", "de", "co.uk", "ai"];

pub(crate) const JOB_TITLES: &[&str] = &[
    "Founder",
    "CEO",
    "Head of Growth",
    "VP Sales",
    "Marketing Manager",
    "CTO",
    "Operations Lead",
    "Owner",
    "Director of Partnerships",
    "Account Executive",
];

pub(crate) const PERSONALIZATIONS: &[&str] = &[
    "Loved your recent post about scaling outbound.",
    "Congrats on the new funding round!",
    "Saw you're hiring SDRs this quarter.",
    "Your team's case study on churn was great.",
    "Noticed you just opened a second location.",
];

pub(crate) const CAMPAIGN_NAMES: &[&str] = &[
    "Q3 SaaS founders – US",
    "Gym owners – EU follow-up",
    "Agencies outbound",
    "Dental clinics – UK",
    "Webinar invite: pipeline 2026",
    "Ecommerce brands >$1M",
    "Recruiters – DACH",
    "Re-engage cold leads",
];

pub(crate) const TIMEZONES: &[&str] = &[
    "America/Chicago",
    "America/Detroit",
    "Europe/Belgrade",
    "Europe/Isle_of_Man",
    "Asia/Kolkata",
    "Australia/Melbourne",
];

pub(crate) const SUBJECTS: &[&str] = &[
    "Quick question, {{firstName}}",
    "{{companyName}} + us?",
    "Idea for {{companyName}}",
    "Worth a chat?",
    "Following up",
];

pub(crate) const REPLIES: &[&str] = &[
    "Sounds interesting, send details.",
    "Not interested, please remove me.",
    "Can we talk next Tuesday?",
    "I'm out of office until Monday.",
    "Who else is using this?",
    "Please reach out to my colleague instead.",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_formats_and_versions() {
        let v7 = uuid_v7(1_700_000_000_000, u128::MAX);
        let s = uuid_str(v7);
        assert_eq!(s.len(), 36);
        assert_eq!(&s[14..15], "7");
        assert!(matches!(&s[19..20], "8" | "9" | "a" | "b"));
        assert_eq!(&s[..13], "018bcfe5-6800");
        assert_eq!(parse_uuid(&s), Some(v7));
        assert_eq!(parse_uuid("not-a-uuid"), None);
        let v4 = uuid_str(uuid_v4(0x1234_5678_9abc_def0_1234_5678_9abc_def0));
        assert_eq!(&v4[14..15], "4");
    }

    #[test]
    fn fast_timestamps_match_chrono() {
        let mut ms: i64 = 0;
        while ms < 4_102_444_800_000 {
            let want = DateTime::<Utc>::from_timestamp_millis(ms)
                .unwrap_or_default()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            assert_eq!(ts(ms), want);
            ms += 86_399_937;
        }
    }

    #[test]
    fn timestamps_have_millis() {
        assert_eq!(ts(1_772_752_187_110), "2026-03-05T23:09:47.110Z");
        assert_eq!(parse_instant("2026-03-05T23:09:47.110Z"), Some(1_772_752_187_110));
        assert_eq!(parse_date_param("2026-04-07"), parse_instant("2026-04-07T00:00:00.000Z"));
        assert_eq!(parse_date_param("nope"), None);
    }
}

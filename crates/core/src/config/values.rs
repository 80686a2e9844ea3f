//! Value types of the configuration, each checked when it is read: a value
//! that deserializes is a valid one, so nothing downstream parses
//! configuration text again or falls back to a default in silence. A bad
//! value fails deserialization with a message, and the loader turns that
//! into a problem with the file, line and field.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Implements `Deserialize` (from a string) and `Serialize` (to its text)
/// for a type with `FromStr<Err: Display>` and `Display`.
macro_rules! text_value {
    ($ty:ty, $expecting:literal) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<$ty, E> {
                        s.parse().map_err(E::custom)
                    }
                }
                d.deserialize_str(V)
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    };
}

/// A duration written as text with a unit: `"500ms"`, `"10s"`, `"5m"`, `"7d"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Interval(pub Duration);

impl Interval {
    /// `secs` seconds.
    pub const fn secs(secs: u64) -> Self {
        Interval(Duration::from_secs(secs))
    }

    /// `ms` milliseconds.
    pub const fn millis(ms: u64) -> Self {
        Interval(Duration::from_millis(ms))
    }

    /// Whole milliseconds, saturating.
    pub fn as_millis_i64(&self) -> i64 {
        i64::try_from(self.0.as_millis()).unwrap_or(i64::MAX)
    }
}

impl FromStr for Interval {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        humantime::parse_duration(s.trim())
            .map(Interval)
            .map_err(|e| format!("invalid duration {s:?} ({e}); write a number and a unit, like \"10s\", \"5m\" or \"7d\""))
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for Interval {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Interval;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration with a unit, like \"10s\"")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Interval, E> {
                s.parse().map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Interval, E> {
                Err(E::custom(format!(
                    "a bare number ({n}) is ambiguous as a duration; write it with a unit, like \"{n}s\""
                )))
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Interval, E> {
                Err(E::custom(format!(
                    "a bare number ({n}) is ambiguous as a duration; write it with a unit, like \"{n}s\""
                )))
            }
            fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Interval, E> {
                Err(E::custom(format!(
                    "a bare number ({n}) is ambiguous as a duration; write it with a unit, like \"{n}s\""
                )))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Interval {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A size in bytes, written as a number of bytes or text with a unit:
/// `"512MiB"`, `"1GB"`, `"64KiB"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let bad =
            || format!("invalid size {s:?}; write bytes with a unit, like \"512MiB\" or \"2GB\"");
        let n: u64 = num.parse().map_err(|_| bad())?;
        let mult: u64 = match unit.trim() {
            "" | "B" => 1,
            "KB" | "kB" => 1_000,
            "KiB" => 1 << 10,
            "MB" => 1_000_000,
            "MiB" => 1 << 20,
            "GB" => 1_000_000_000,
            "GiB" => 1 << 30,
            "TB" => 1_000_000_000_000,
            "TiB" => 1 << 40,
            _ => return Err(bad()),
        };
        n.checked_mul(mult).map(ByteSize).ok_or_else(bad)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 4] = [
            ("TiB", 1 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
        ];
        for (unit, size) in UNITS {
            if self.0 >= size && self.0.is_multiple_of(size) {
                return write!(f, "{}{unit}", self.0 / size);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size, like \"512MiB\"")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<ByteSize, E> {
                s.parse().map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<ByteSize, E> {
                u64::try_from(n)
                    .map(ByteSize)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(n))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A time of day, `HH:MM` (UTC where the configuration says so).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeOfDay {
    minutes: u16,
}

impl TimeOfDay {
    /// `hour:minute`, when both are in range.
    pub fn new(hour: u16, minute: u16) -> Option<Self> {
        (hour < 24 && minute < 60).then_some(Self {
            minutes: hour * 60 + minute,
        })
    }

    /// Minutes after midnight, 0..1440.
    pub fn minutes(&self) -> u16 {
        self.minutes
    }
}

impl FromStr for TimeOfDay {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not a time of day; write HH:MM, like \"02:30\"");
        let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
        if h.is_empty() || h.len() > 2 || m.len() != 2 {
            return Err(bad());
        }
        let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        TimeOfDay::new(h, m).ok_or_else(bad)
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.minutes / 60, self.minutes % 60)
    }
}

text_value!(TimeOfDay, "a time of day, like \"02:30\"");

/// A day of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Weekday {
    /// Monday.
    Mon,
    /// Tuesday.
    Tue,
    /// Wednesday.
    Wed,
    /// Thursday.
    Thu,
    /// Friday.
    Fri,
    /// Saturday.
    Sat,
    /// Sunday.
    Sun,
}

impl Weekday {
    /// Every day, Monday first.
    pub const ALL: [Weekday; 7] = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ];

    /// 0 = Monday .. 6 = Sunday.
    pub fn index(&self) -> u8 {
        *self as u8
    }

    fn short(&self) -> &'static str {
        ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][self.index() as usize]
    }
}

impl FromStr for Weekday {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const LONG: [&str; 7] = [
            "monday",
            "tuesday",
            "wednesday",
            "thursday",
            "friday",
            "saturday",
            "sunday",
        ];
        let t = s.trim().to_ascii_lowercase();
        Weekday::ALL
            .into_iter()
            .zip(LONG)
            .find(|(d, long)| t == d.short() || t == *long)
            .map(|(d, _)| d)
            .ok_or_else(|| format!("{s:?} is not a day; write mon, tue, wed, thu, fri, sat or sun"))
    }
}

impl fmt::Display for Weekday {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.short())
    }
}

text_value!(Weekday, "a day, like \"sat\"");

/// An inclusive range of accepted HTTP status codes: `"200-399"` or `"204"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatusRange {
    /// Lowest accepted code.
    pub lo: u16,
    /// Highest accepted code.
    pub hi: u16,
}

impl StatusRange {
    /// 200 to 399: success and redirects.
    pub const DEFAULT: StatusRange = StatusRange { lo: 200, hi: 399 };

    /// Whether `status` is accepted.
    pub fn contains(&self, status: u16) -> bool {
        (self.lo..=self.hi).contains(&status)
    }
}

impl Default for StatusRange {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl FromStr for StatusRange {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!("{text:?} is not a status range; write codes from 100 to 599, like \"200-399\" or \"204\"")
        };
        let code = |t: &str| t.trim().parse::<u16>().map_err(|_| bad());
        let (lo, hi) = match text.trim().split_once('-') {
            Some((a, b)) => (code(a)?, code(b)?),
            None => {
                let v = code(text)?;
                (v, v)
            }
        };
        if (100..=599).contains(&lo) && (100..=599).contains(&hi) && lo <= hi {
            Ok(StatusRange { lo, hi })
        } else {
            Err(bad())
        }
    }
}

impl fmt::Display for StatusRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

text_value!(StatusRange, "a status range, like \"200-399\"");

/// The HTTP methods a check may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HttpMethod {
    /// GET.
    #[default]
    Get,
    /// HEAD.
    Head,
    /// POST (with no body).
    Post,
}

impl HttpMethod {
    /// The method's name on the wire.
    pub fn as_str(&self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Head => "HEAD",
            HttpMethod::Post => "POST",
        }
    }
}

impl FromStr for HttpMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "GET" => Ok(HttpMethod::Get),
            "HEAD" => Ok(HttpMethod::Head),
            "POST" => Ok(HttpMethod::Post),
            _ => Err(format!("method {s:?} must be GET, HEAD or POST")),
        }
    }
}

impl fmt::Display for HttpMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

text_value!(HttpMethod, "GET, HEAD or POST");

/// A name pattern where `*` matches any run of characters (the only
/// metacharacter), like `web-*` or `endpoint_up/*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Glob(String);

impl Glob {
    /// A pattern (any text is a valid one, except an empty one).
    pub fn new(pattern: impl Into<String>) -> Result<Self, String> {
        let p = pattern.into();
        if p.trim().is_empty() {
            return Err("a pattern cannot be empty; `*` matches everything".into());
        }
        if p.len() > 1024 {
            return Err(format!("a pattern is at most 1024 bytes, got {}", p.len()));
        }
        Ok(Glob(p))
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the pattern has a `*` (matches more than one name).
    pub fn is_wildcard(&self) -> bool {
        self.0.contains('*')
    }

    /// Whether `text` matches.
    pub fn matches(&self, text: &str) -> bool {
        glob_match(&self.0, text)
    }
}

impl FromStr for Glob {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Glob::new(s)
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

text_value!(Glob, "a name pattern (`*` matches anything)");

/// `*`-wildcard match (the only metacharacter).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = text;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            let Some(at) = rest.find(part) else {
                return false;
            };
            rest = &rest[at + part.len()..];
        }
    }
    true
}

/// An `http://` or `https://` URL with a host and a valid port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HttpUrl(String);

impl HttpUrl {
    /// The URL as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether it uses TLS.
    pub fn is_https(&self) -> bool {
        self.0.starts_with("https://")
    }
}

impl FromStr for HttpUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parsed =
            url::Url::parse(s.trim()).map_err(|e| format!("url {s:?} is not valid: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!("url {s:?} must start with http:// or https://"));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(format!("url {s:?} has no host"));
        }
        Ok(HttpUrl(s.trim().to_string()))
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

text_value!(HttpUrl, "an http:// or https:// URL");

/// A TCP address, `host:port`, with a port from 1 to 65535 (`[::1]:6379`
/// for IPv6).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    text: String,
    host: String,
    port: u16,
}

impl HostPort {
    /// The address as written, for connecting.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The host part (without IPv6 brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl FromStr for HostPort {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let bad =
            |why: &str| format!("address {s:?} {why}; write host:port, like \"127.0.0.1:6379\"");
        let (host, port) = t.rsplit_once(':').ok_or_else(|| bad("has no port"))?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() {
            return Err(bad("has no host"));
        }
        let host_ok = host.parse::<std::net::IpAddr>().is_ok()
            || host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        if !host_ok {
            return Err(bad("has an invalid host"));
        }
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| bad("has an invalid port (1-65535)"))?;
        Ok(HostPort {
            text: t.to_string(),
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

text_value!(HostPort, "an address, like \"127.0.0.1:6379\"");

/// A JSON pointer (RFC 6901): empty, or starting with `/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JsonPointer(String);

impl JsonPointer {
    /// The pointer.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for JsonPointer {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.starts_with('/') {
            Ok(JsonPointer(s.to_string()))
        } else {
            Err(format!(
                "json_pointer {s:?} must start with / (RFC 6901), like \"/status\""
            ))
        }
    }
}

impl fmt::Display for JsonPointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

text_value!(JsonPointer, "a JSON pointer, like \"/status\"");

/// A log filter: `info`, `debug`, or directives like `aegis=debug,warn`.
/// Levels are trace, debug, info, warn, error and off; a target is a Rust
/// module path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LogFilter(String);

impl LogFilter {
    /// The filter as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for LogFilter {
    fn default() -> Self {
        LogFilter("info".into())
    }
}

impl FromStr for LogFilter {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
        let level_ok = |l: &str| LEVELS.contains(&l.trim().to_ascii_lowercase().as_str());
        let target_ok = |t: &str| {
            !t.is_empty()
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '-'))
        };
        if s.trim().is_empty() {
            return Err("the log filter is empty; write a level, like \"info\"".into());
        }
        for directive in s.split(',').map(str::trim) {
            // A bare word must be a level: a typo is refused, not read as
            // the name of a module to trace.
            let ok = match directive.split_once('=') {
                Some((target, level)) => target_ok(target.trim()) && level_ok(level),
                None => level_ok(directive),
            };
            if !ok {
                return Err(format!(
                    "{directive:?} is not a log directive; write a level (trace, debug, info, warn, error, off) or target=level, like \"aegis=debug,info\""
                ));
            }
        }
        Ok(LogFilter(s.trim().to_string()))
    }
}

impl fmt::Display for LogFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

text_value!(LogFilter, "a log level or filter, like \"info\"");

/// A non-empty name (of a check, a rule, a process, a receiver), at most
/// 128 characters, of letters, digits and `-_.:@/`: it appears in series
/// names, metric labels and URLs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(String);

impl Name {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Name {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err("the name is empty".into());
        }
        if s.chars().count() > 128 {
            return Err(format!("the name {s:?} is longer than 128 characters"));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '@' | '/')))
        {
            return Err(format!(
                "the name {s:?} has {c:?}; use letters, digits and - _ . : @ /"
            ));
        }
        Ok(Name(s.to_string()))
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

text_value!(Name, "a name");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes() {
        assert_eq!("512MiB".parse::<ByteSize>(), Ok(ByteSize(512 << 20)));
        assert_eq!("1000".parse::<ByteSize>(), Ok(ByteSize(1000)));
        assert!("12 parsecs".parse::<ByteSize>().is_err());
        assert_eq!(ByteSize(256 << 20).to_string(), "256MiB");
    }

    #[test]
    fn times_of_day_and_days() {
        assert_eq!("02:30".parse::<TimeOfDay>().map(|t| t.minutes()), Ok(150));
        for bad in ["24:00", "2:3", "12:60", "noon", "12", "-1:00", "1:000"] {
            assert!(bad.parse::<TimeOfDay>().is_err(), "{bad}");
        }
        assert_eq!("Saturday".parse::<Weekday>(), Ok(Weekday::Sat));
        assert_eq!("sun".parse::<Weekday>(), Ok(Weekday::Sun));
        assert!("satur".parse::<Weekday>().is_err());
    }

    #[test]
    fn status_ranges() {
        assert_eq!(
            "200-299".parse::<StatusRange>(),
            Ok(StatusRange { lo: 200, hi: 299 })
        );
        assert_eq!(
            "204".parse::<StatusRange>().map(|r| r.to_string()),
            Ok("204".into())
        );
        for bad in ["299-200", "99", "600", "2xx", "", "200-"] {
            assert!(bad.parse::<StatusRange>().is_err(), "{bad}");
        }
    }

    #[test]
    fn urls_and_addresses() {
        assert!("http://127.0.0.1:9093/api/v2/alerts"
            .parse::<HttpUrl>()
            .is_ok());
        for bad in [
            "http://",
            "javascript:alert(1)",
            "http://exa mple.com:99999/x",
            "ftp://x",
            "not a url",
        ] {
            assert!(bad.parse::<HttpUrl>().is_err(), "{bad}");
        }
        let a: HostPort = "127.0.0.1:6379".parse().expect("valid");
        assert_eq!((a.host(), a.port()), ("127.0.0.1", 6379));
        assert!("[::1]:11211".parse::<HostPort>().is_ok());
        for bad in [
            "nohost:notaport",
            "127.0.0.1",
            ":80",
            "a b:80",
            "x:0",
            "x:70000",
        ] {
            assert!(bad.parse::<HostPort>().is_err(), "{bad}");
        }
    }

    #[test]
    fn log_filters() {
        for ok in [
            "info",
            "debug",
            "aegis=debug,info",
            "aegis_heal=trace",
            "WARN",
        ] {
            assert!(ok.parse::<LogFilter>().is_ok(), "{ok}");
        }
        for bad in ["", "loud", "aegis=loud", "a b", "=info"] {
            assert!(bad.parse::<LogFilter>().is_err(), "{bad}");
        }
    }

    #[test]
    fn globs_and_names() {
        let g: Glob = "web-*".parse().expect("glob");
        assert!(g.matches("web-1") && !g.matches("db"));
        assert!(Glob::new("").is_err());
        assert!("web".parse::<Name>().is_ok());
        assert!("".parse::<Name>().is_err());
        assert!("a b".parse::<Name>().is_err());
    }
}

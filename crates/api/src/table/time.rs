//! Timestamps and ages: RFC 3339 parsing and upstream's `duration.HumanDuration`.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// An instant as nanoseconds since the Unix epoch (negative before it).
pub(crate) type Nanos = i128;

const NANOS_PER_SECOND: i128 = 1_000_000_000;

/// `now` as nanoseconds since the Unix epoch.
pub(crate) fn nanos_of(now: SystemTime) -> Nanos {
    match now.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// Parses an RFC 3339 timestamp (`2024-05-01T10:00:00Z`, `…T10:00:00.123456+02:00`); `None`
/// for anything without a date, a time and an offset.
pub fn parse_rfc3339(text: &str) -> Option<Nanos> {
    let at: jiff::Timestamp = text.parse().ok()?;
    Some(at.as_nanosecond())
}

/// `seconds` since the epoch as RFC 3339 in UTC (`2024-05-01T12:00:00Z`), as Kubernetes writes
/// times. Seconds beyond the years -9999..=9999 are clamped to them.
pub fn format_rfc3339(seconds: i64) -> String {
    let seconds = seconds.clamp(
        jiff::Timestamp::MIN.as_second(),
        jiff::Timestamp::MAX.as_second(),
    );
    jiff::Timestamp::from_second(seconds)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_string()
}

/// A timestamp field: `None` when absent, null, empty or unparsable (upstream's zero time).
pub(crate) fn timestamp(value: Option<&Value>) -> Option<Nanos> {
    value.and_then(Value::as_str).and_then(parse_rfc3339)
}

/// Upstream's `translateTimestampSince`: the age of `at`, or `<unknown>` for a zero time.
pub(crate) fn since(at: Option<Nanos>, now: Nanos) -> String {
    match at {
        None => "<unknown>".to_owned(),
        Some(at) => human_duration(now - at),
    }
}

/// Upstream's `duration.HumanDuration`: `42s`, `3m2s`, `15m`, `5h3m`, `20h`, `2d3h`, `30d`,
/// `2y40d`, `9y`; `0s` for a second or so in the future, `<invalid>` beyond.
pub fn human_duration(nanos: Nanos) -> String {
    let seconds = nanos / NANOS_PER_SECOND; // truncates toward zero, as Go's int(d.Seconds())
    if seconds < -1 {
        return "<invalid>".to_owned();
    }
    if seconds < 0 {
        return "0s".to_owned();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        if s == 0 {
            return format!("{minutes}m");
        }
        return format!("{minutes}m{s}s");
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            return format!("{hours}h");
        }
        return format!("{hours}h{m}m");
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            return format!("{}d", hours / 24);
        }
        return format!("{}d{h}h", hours / 24);
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        if dy == 0 {
            return format!("{}y", hours / 24 / 365);
        }
        return format!("{}y{dy}d", hours / 24 / 365);
    }
    format!("{}y", hours / 24 / 365)
}

//! CronJob schedules: the five-field syntax and `@` descriptors of upstream's cron library
//! (robfig/cron v3's standard parser), with its error texts, and the next time a schedule fires
//! in a time zone. The API's validation and the CronJob controller both use [`CronSchedule`],
//! so what the API accepts is exactly what the controller runs.
//!
//! Time zones follow the library's rule: an instant fires when its wall-clock time in the zone
//! matches the fields. So a time skipped by a daylight-saving jump (02:30 on a spring-forward
//! night) does not fire that day, and a repeated wall-clock time (01:30 on a fall-back night)
//! fires at both instants.

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp, ToSpan};

const DESCRIPTORS: &[(&str, &str)] = &[
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

const MONTHS: &[&str] = &[
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// How far ahead a schedule is searched before it counts as never firing (the library's limit).
const SEARCH_YEARS: i16 = 5;

/// A parsed schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronSchedule {
    kind: Kind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    /// Five fields, each a bit set of the values it allows.
    Fields(Fields),
    /// `@every <duration>`: a constant delay, whole seconds, at least one second.
    Every(SignedDuration),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Fields {
    minutes: u64,
    hours: u64,
    days_of_month: u64,
    months: u64,
    days_of_week: u64,
    /// Day of month or day of week is `*`/`?`: then both must match, otherwise either may
    /// (cron's rule for "the 1st and every Monday").
    day_star: bool,
}

impl CronSchedule {
    /// Parses a schedule; the error says what upstream's cron library says.
    pub fn parse(spec: &str) -> Result<Self, CronError> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err(CronError::Empty);
        }
        if let Some(rest) = spec.strip_prefix('@') {
            if let Some((_, fields)) = DESCRIPTORS.iter().find(|(name, _)| *name == spec) {
                return Self::parse(fields);
            }
            if let Some(duration) = rest.strip_prefix("every ") {
                let duration = duration.trim();
                return match go_duration(duration) {
                    Some(d) => Ok(Self {
                        kind: Kind::Every(SignedDuration::from_secs(
                            i64::try_from(d.as_secs().max(1)).unwrap_or(i64::MAX),
                        )),
                    }),
                    None => Err(CronError::Duration {
                        spec: spec.to_owned(),
                        duration: duration.to_owned(),
                    }),
                };
            }
            return Err(CronError::Descriptor {
                spec: spec.to_owned(),
            });
        }
        let fields: Vec<&str> = spec.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(CronError::FieldCount {
                found: fields.len(),
                fields: fields.join(" "),
            });
        }
        let bounds: [(u32, u32, &[&str], u32); 5] = [
            (0, 59, &[], 0),
            (0, 23, &[], 0),
            (1, 31, &[], 0),
            (1, 12, MONTHS, 1),
            (0, 6, DAYS, 0),
        ];
        let mut sets = [0u64; 5];
        let mut stars = [false; 5];
        for (i, (field, (min, max, names, first))) in fields.iter().zip(bounds).enumerate() {
            for part in field.split(',') {
                let optional = i == 2 || i == 4;
                let (bits, star) = range(part, min, max, names, first, optional)?;
                sets[i] |= bits;
                stars[i] |= star;
            }
        }
        Ok(Self {
            kind: Kind::Fields(Fields {
                minutes: sets[0],
                hours: sets[1],
                days_of_month: sets[2],
                months: sets[3],
                days_of_week: sets[4],
                day_star: stars[2] || stars[4],
            }),
        })
    }

    /// The first time after `after` (strictly) that the schedule fires in `tz`, or `None` when
    /// it never does within five years (`0 0 30 2 *`).
    pub fn next_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        match &self.kind {
            Kind::Every(delay) => {
                let whole = Timestamp::from_second(after.as_second()).ok()?;
                whole.checked_add(*delay).ok()
            }
            Kind::Fields(fields) => fields.next_after(after, tz),
        }
    }
}

impl Fields {
    fn next_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let local = after.to_zoned(tz.clone()).datetime();
        // A fold repeats up to a few hours of wall-clock time, so an instant after `after` may
        // have an earlier wall-clock time: start the search that far back, and keep looking
        // that far past the first hit for an earlier instant.
        let window = 3.hours();
        let mut civil = local.checked_sub(window).ok()?;
        civil = civil.with().second(0).subsec_nanosecond(0).build().ok()?;
        let limit = local.date().year().saturating_add(SEARCH_YEARS);
        let mut best: Option<(Timestamp, DateTime)> = None;
        while let Some(candidate) = self.next_civil(civil, limit) {
            if let Some((_, found_at)) = best {
                if candidate > found_at.checked_add(window).ok()? {
                    break;
                }
            }
            for instant in instants(tz, candidate) {
                if instant > after && best.is_none_or(|(b, _)| instant < b) {
                    best = Some((instant, best.map_or(candidate, |(_, c)| c)));
                }
            }
            civil = candidate.checked_add(1.minute()).ok()?;
        }
        best.map(|(instant, _)| instant)
    }

    fn day_matches(&self, date: Date) -> bool {
        let dom = bit(&self.days_of_month, date.day().unsigned_abs().into());
        let dow = bit(
            &self.days_of_week,
            date.weekday().to_sunday_zero_offset().unsigned_abs().into(),
        );
        if self.day_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first wall-clock minute at or after `from` that matches, before year `limit`.
    fn next_civil(&self, from: DateTime, limit: i16) -> Option<DateTime> {
        let mut date = from.date();
        let mut start = Some(from.time());
        while date.year() < limit {
            if bit(&self.months, date.month().unsigned_abs().into()) && self.day_matches(date) {
                let (from_hour, from_minute) = start.map_or((0, 0), |t| (t.hour(), t.minute()));
                for hour in from_hour..24 {
                    if !bit(&self.hours, hour.unsigned_abs().into()) {
                        continue;
                    }
                    let first = if hour == from_hour { from_minute } else { 0 };
                    for minute in first..60 {
                        if bit(&self.minutes, minute.unsigned_abs().into()) {
                            return Some(date.to_datetime(Time::new(hour, minute, 0, 0).ok()?));
                        }
                    }
                }
            }
            start = None;
            date = date.tomorrow().ok()?;
        }
        None
    }
}

/// Every instant whose wall-clock time in `tz` is `civil`: none in a gap, two in a fold.
fn instants(tz: &TimeZone, civil: DateTime) -> Vec<Timestamp> {
    let ambiguous = tz.to_ambiguous_timestamp(civil);
    let at = |offset: jiff::tz::Offset| offset.to_timestamp(civil).ok();
    match ambiguous.offset() {
        AmbiguousOffset::Unambiguous { offset } => at(offset).into_iter().collect(),
        AmbiguousOffset::Gap { .. } => Vec::new(),
        AmbiguousOffset::Fold { before, after } => {
            at(before).into_iter().chain(at(after)).collect()
        }
    }
}

fn bit(set: &u64, value: u32) -> bool {
    value < 64 && set & (1u64 << value) != 0
}

/// One comma-separated part of a field: its bit set and whether it was `*`/`?` without a step.
fn range(
    expr: &str,
    min: u32,
    max: u32,
    names: &[&str],
    first: u32,
    optional: bool,
) -> Result<(u64, bool), CronError> {
    let steps: Vec<&str> = expr.split('/').collect();
    if steps.len() > 2 {
        return Err(CronError::TooManySlashes {
            expr: expr.to_owned(),
        });
    }
    let bounds: Vec<&str> = steps[0].split('-').collect();
    let star = bounds[0] == "*" || (optional && bounds[0] == "?");
    let (start, end) = if star {
        if bounds.len() > 1 {
            return Err(CronError::TooManyHyphens {
                expr: expr.to_owned(),
            });
        }
        (min, max)
    } else {
        let start = value(bounds[0], names, first)?;
        let end = match bounds.len() {
            1 => start,
            2 => value(bounds[1], names, first)?,
            _ => {
                return Err(CronError::TooManyHyphens {
                    expr: expr.to_owned(),
                })
            }
        };
        (start, end)
    };
    let (end, step) = match steps.get(1) {
        Some(step) => {
            let step = number(step)?;
            if step == 0 {
                return Err(CronError::ZeroStep {
                    expr: expr.to_owned(),
                });
            }
            // `N/step` means N through the maximum.
            if bounds.len() == 1 && !star {
                (max, step)
            } else {
                (end, step)
            }
        }
        None => (end, 1),
    };
    if start < min {
        return Err(CronError::BelowMinimum {
            start,
            min,
            expr: expr.to_owned(),
        });
    }
    if end > max {
        return Err(CronError::AboveMaximum {
            end,
            max,
            expr: expr.to_owned(),
        });
    }
    if start > end {
        return Err(CronError::Inverted {
            start,
            end,
            expr: expr.to_owned(),
        });
    }
    let bits = (start..=end)
        .step_by(usize::try_from(step).unwrap_or(usize::MAX))
        .fold(0u64, |bits, v| bits | (1u64 << v));
    Ok((bits, star && step == 1))
}

fn value(text: &str, names: &[&str], first: u32) -> Result<u32, CronError> {
    let lower = text.to_ascii_lowercase();
    if let Some(index) = names.iter().position(|n| *n == lower) {
        return Ok(first + u32::try_from(index).unwrap_or(0));
    }
    number(text)
}

fn number(text: &str) -> Result<u32, CronError> {
    let parsed: Result<i64, _> = text.parse();
    match parsed {
        Ok(n) if n < 0 => Err(CronError::Negative {
            number: n,
            text: text.to_owned(),
        }),
        Ok(n) => u32::try_from(n).map_err(|_| CronError::OutOfRange {
            text: text.to_owned(),
        }),
        Err(_) => Err(CronError::NotANumber {
            text: text.to_owned(),
        }),
    }
}

/// A Go duration such as `1h30m` or `1.5s`, or `None` when `text` is not one.
fn go_duration(text: &str) -> Option<std::time::Duration> {
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let amount: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, seconds) = [
            ("ns", 1e-9),
            ("us", 1e-6),
            ("µs", 1e-6),
            ("ms", 1e-3),
            ("s", 1.0),
            ("m", 60.0),
            ("h", 3600.0),
        ]
        .into_iter()
        .find(|(u, _)| rest.starts_with(u))?;
        rest = &rest[unit.len()..];
        total += amount * seconds;
    }
    std::time::Duration::try_from_secs_f64(total).ok()
}

/// Looks up an IANA time zone (`spec.timeZone`) in the database compiled into the binary.
pub fn time_zone(name: &str) -> Result<TimeZone, UnknownTimeZone> {
    if name.eq_ignore_ascii_case("local") {
        return Err(UnknownTimeZone {
            name: "Local".to_owned(),
            source: None,
        });
    }
    jiff::tz::db().get(name).map_err(|source| UnknownTimeZone {
        name: name.to_owned(),
        source: Some(source),
    })
}

/// A schedule that does not parse, worded as upstream's cron library (robfig/cron) words it:
/// the words are what `kubectl` shows for an invalid CronJob.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    /// Nothing but blanks.
    #[error("empty spec string")]
    Empty,
    /// `@every <duration>` whose duration Go's `time.ParseDuration` refuses.
    #[error("failed to parse duration {spec}: time: invalid duration \"{duration}\"")]
    Duration {
        /// The whole schedule.
        spec: String,
        /// The duration part.
        duration: String,
    },
    /// An `@name` that is not one of the descriptors.
    #[error("unrecognized descriptor: {spec}")]
    Descriptor {
        /// The whole schedule.
        spec: String,
    },
    /// Not five fields.
    #[error("expected exactly 5 fields, found {found}: [{fields}]")]
    FieldCount {
        /// How many there are.
        found: usize,
        /// The fields, joined by single spaces.
        fields: String,
    },
    /// A field with more than one `/`.
    #[error("too many slashes: {expr}")]
    TooManySlashes {
        /// The field.
        expr: String,
    },
    /// A range with more than one `-`, or a `*` with one.
    #[error("too many hyphens: {expr}")]
    TooManyHyphens {
        /// The field.
        expr: String,
    },
    /// A step of 0.
    #[error("step of range should be a positive number: {expr}")]
    ZeroStep {
        /// The field.
        expr: String,
    },
    /// A range that starts below the field's minimum.
    #[error("beginning of range ({start}) below minimum ({min}): {expr}")]
    BelowMinimum {
        /// Where the range starts.
        start: u32,
        /// The field's minimum.
        min: u32,
        /// The field.
        expr: String,
    },
    /// A range that ends above the field's maximum.
    #[error("end of range ({end}) above maximum ({max}): {expr}")]
    AboveMaximum {
        /// Where the range ends.
        end: u32,
        /// The field's maximum.
        max: u32,
        /// The field.
        expr: String,
    },
    /// A range that ends before it starts.
    #[error("beginning of range ({start}) beyond end of range ({end}): {expr}")]
    Inverted {
        /// Where the range starts.
        start: u32,
        /// Where it ends.
        end: u32,
        /// The field.
        expr: String,
    },
    /// A negative number.
    #[error("negative number ({number}) not allowed: {text}")]
    Negative {
        /// The number.
        number: i64,
        /// As written.
        text: String,
    },
    /// A number too big for a field.
    #[error(
        "failed to parse int from {text}: strconv.Atoi: parsing \"{text}\": value out of range"
    )]
    OutOfRange {
        /// As written.
        text: String,
    },
    /// Not a number (nor a month or weekday name where those are allowed).
    #[error("failed to parse int from {text}: strconv.Atoi: parsing \"{text}\": invalid syntax")]
    NotANumber {
        /// As written.
        text: String,
    },
}

/// A `spec.timeZone` that is not in the time zone database compiled into the binary.
#[derive(Debug, thiserror::Error)]
#[error("unknown time zone {name}")]
pub struct UnknownTimeZone {
    /// The name asked for.
    pub name: String,
    /// The database's answer (none for `Local`, which is refused before asking).
    #[source]
    source: Option<jiff::Error>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(spec: &str) -> Result<(), String> {
        CronSchedule::parse(spec)
            .map(drop)
            .map_err(|err| err.to_string())
    }

    fn next(spec: &str, after: &str, zone: &str) -> String {
        let tz = time_zone(zone).unwrap();
        let after: Timestamp = after.parse().unwrap();
        let next = CronSchedule::parse(spec)
            .unwrap()
            .next_after(after, &tz)
            .unwrap();
        next.to_zoned(tz).to_string()
    }

    #[test]
    fn schedules() {
        for ok in [
            "*/5 * * * *",
            "0 0 * * *",
            "0 9-17 * * MON-FRI",
            "15 3 1,15 jan,jul ?",
            "@hourly",
            "@every 1h30m",
            "5/10 * * * *",
        ] {
            assert_eq!(parse(ok), Ok(()), "{ok}");
        }
        assert_eq!(
            parse("foo").unwrap_err(),
            "expected exactly 5 fields, found 1: [foo]"
        );
        assert_eq!(
            parse("60 * * * *").unwrap_err(),
            "end of range (60) above maximum (59): 60"
        );
        assert_eq!(
            parse("* * 0 * *").unwrap_err(),
            "beginning of range (0) below minimum (1): 0"
        );
        assert_eq!(
            parse("@sometimes").unwrap_err(),
            "unrecognized descriptor: @sometimes"
        );
        assert!(parse("x * * * *")
            .unwrap_err()
            .starts_with("failed to parse int from x"));
        assert_eq!(
            parse("*/0 * * * *").unwrap_err(),
            "step of range should be a positive number: */0"
        );
    }

    #[test]
    fn next_times_in_utc() {
        let at = "2026-03-10T10:07:30Z";
        assert_eq!(
            next("* * * * *", at, "UTC"),
            "2026-03-10T10:08:00+00:00[UTC]"
        );
        assert_eq!(
            next("*/15 * * * *", at, "UTC"),
            "2026-03-10T10:15:00+00:00[UTC]"
        );
        assert_eq!(
            next("5/20 * * * *", at, "UTC"),
            "2026-03-10T10:25:00+00:00[UTC]"
        );
        assert_eq!(next("@hourly", at, "UTC"), "2026-03-10T11:00:00+00:00[UTC]");
        assert_eq!(next("@daily", at, "UTC"), "2026-03-11T00:00:00+00:00[UTC]");
        assert_eq!(next("@weekly", at, "UTC"), "2026-03-15T00:00:00+00:00[UTC]");
        assert_eq!(
            next("@monthly", at, "UTC"),
            "2026-04-01T00:00:00+00:00[UTC]"
        );
        assert_eq!(next("@yearly", at, "UTC"), "2027-01-01T00:00:00+00:00[UTC]");
        // Exactly on a firing time: the next one, never the same.
        assert_eq!(
            next("0 * * * *", "2026-03-10T10:00:00Z", "UTC"),
            "2026-03-10T11:00:00+00:00[UTC]"
        );
        // Day of month and day of week both restricted: either matches.
        assert_eq!(
            next("0 0 13 * FRI", at, "UTC"),
            "2026-03-13T00:00:00+00:00[UTC]"
        );
        assert_eq!(
            next("0 0 12 * mon", at, "UTC"),
            "2026-03-12T00:00:00+00:00[UTC]"
        );
        // One of them `*`: both must match (Friday the 13th with a `*` month is the 13th only).
        assert_eq!(
            next("0 0 * * 1", at, "UTC"),
            "2026-03-16T00:00:00+00:00[UTC]"
        );
        assert_eq!(
            next("0 12 29 feb *", at, "UTC"),
            "2028-02-29T12:00:00+00:00[UTC]"
        );
        assert_eq!(
            next("@every 90s", at, "UTC"),
            "2026-03-10T10:09:00+00:00[UTC]"
        );
        let never = CronSchedule::parse("0 0 30 2 *").unwrap();
        assert_eq!(never.next_after(at.parse().unwrap(), &TimeZone::UTC), None);
    }

    #[test]
    fn time_zones_and_daylight_saving() {
        // 09:00 in New York is 14:00 UTC in winter.
        assert_eq!(
            next("0 9 * * *", "2026-01-05T15:00:00Z", "America/New_York"),
            "2026-01-06T09:00:00-05:00[America/New_York]"
        );
        // Spring forward (2026-03-08, 02:00 → 03:00): 02:30 does not exist and is skipped.
        assert_eq!(
            next("30 2 * * *", "2026-03-07T12:00:00Z", "America/New_York"),
            "2026-03-09T02:30:00-04:00[America/New_York]"
        );
        // Every half hour across the jump: 01:30 EST, then 03:00 EDT.
        assert_eq!(
            next("0,30 * * * *", "2026-03-08T06:30:00Z", "America/New_York"),
            "2026-03-08T03:00:00-04:00[America/New_York]"
        );
        // Fall back (2026-11-01, 02:00 EDT → 01:00 EST): 01:30 happens twice and fires twice.
        assert_eq!(
            next("30 1 * * *", "2026-11-01T04:00:00Z", "America/New_York"),
            "2026-11-01T01:30:00-04:00[America/New_York]"
        );
        assert_eq!(
            next("30 1 * * *", "2026-11-01T05:30:00Z", "America/New_York"),
            "2026-11-01T01:30:00-05:00[America/New_York]"
        );
        assert_eq!(
            next("30 1 * * *", "2026-11-01T06:30:00Z", "America/New_York"),
            "2026-11-02T01:30:00-05:00[America/New_York]"
        );
        // Every 20 minutes through the repeated hour: 01:40 EDT, then 01:00 EST.
        assert_eq!(
            next("*/20 * * * *", "2026-11-01T05:40:00Z", "America/New_York"),
            "2026-11-01T01:00:00-05:00[America/New_York]"
        );
        assert_eq!(
            time_zone("Local").unwrap_err().to_string(),
            "unknown time zone Local"
        );
        let mars = time_zone("Mars/Olympus").unwrap_err();
        assert_eq!(mars.to_string(), "unknown time zone Mars/Olympus");
        assert!(
            std::error::Error::source(&mars).is_some(),
            "the database's error is kept"
        );
    }
}

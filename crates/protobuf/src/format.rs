//! Go's text forms of times and durations, as `encoding/json` writes `metav1.Time`, `MicroTime` and `Duration`.

/// `2006-01-02T15:04:05Z` (seconds) or `2006-01-02T15:04:05.000000Z` (with `micros`), in UTC.
/// `None` outside years 0–9999, which RFC 3339 cannot write.
pub(crate) fn rfc3339(seconds: i64, micros: Option<u32>) -> Option<String> {
    // Years 0 to 9999: from 0000-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
    if !(-62_167_219_200..=253_402_300_799).contains(&seconds) {
        return None;
    }
    let whole = k3rs_api::table::format_rfc3339(seconds);
    Some(match micros {
        None => whole,
        Some(micros) => format!("{}.{micros:06}Z", whole.trim_end_matches('Z')),
    })
}

/// Go's `time.Duration.String()`: `1h0m0s`, `1.5s`, `300ms`, `0s`.
pub(crate) fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".to_owned();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let u = nanos.unsigned_abs();
    if u < 1_000_000_000 {
        let (scaled, digits, unit) = match u {
            0..1_000 => (u, 0, "ns"),
            1_000..1_000_000 => (u, 3, "µs"),
            _ => (u, 6, "ms"),
        };
        return format!("{sign}{}{unit}", with_fraction(scaled, digits));
    }
    let seconds = with_fraction(u % 60_000_000_000, 9);
    let minutes = u / 60_000_000_000;
    match minutes {
        0 => format!("{sign}{seconds}s"),
        1..60 => format!("{sign}{minutes}m{seconds}s"),
        _ => format!("{sign}{}h{}m{seconds}s", minutes / 60, minutes % 60),
    }
}

/// `value / 10^digits` with the fraction's trailing zeros (and a bare point) removed.
fn with_fraction(value: u64, digits: u32) -> String {
    let scale = 10u64.pow(digits);
    let (whole, frac) = (value / scale, value % scale);
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:0width$}", width = digits as usize);
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(rfc3339(0, None).as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(
            rfc3339(1_136_214_245, None).as_deref(),
            Some("2006-01-02T15:04:05Z")
        );
        assert_eq!(
            rfc3339(1_136_214_245, Some(123_456)).as_deref(),
            Some("2006-01-02T15:04:05.123456Z")
        );
        assert_eq!(
            rfc3339(951_782_400, None).as_deref(),
            Some("2000-02-29T00:00:00Z")
        );
        assert_eq!(rfc3339(-1, None).as_deref(), Some("1969-12-31T23:59:59Z"));
        // Go's zero time, 0001-01-01T00:00:00Z.
        assert_eq!(
            rfc3339(-62_135_596_800, None).as_deref(),
            Some("0001-01-01T00:00:00Z")
        );
        assert_eq!(rfc3339(i64::MAX, None), None);
        assert_eq!(rfc3339(i64::MIN, None), None);
    }

    #[test]
    fn durations_match_go() {
        for (nanos, text) in [
            (0, "0s"),
            (1, "1ns"),
            (1_100, "1.1µs"),
            (2_200_000, "2.2ms"),
            (300_000_000, "300ms"),
            (1_500_000_000, "1.5s"),
            (61_000_000_000, "1m1s"),
            (3_600_000_000_000, "1h0m0s"),
            (-5_000_000_000, "-5s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
        ] {
            assert_eq!(go_duration(nanos), text, "{nanos}");
        }
    }
}

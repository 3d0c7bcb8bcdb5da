//! Resource quantities (`500m`, `1Gi`, `1e3`): parsed approximately to check and compare them
//! (validation), and exactly to add them up (the scheduler's `milli_value` and `value`).

use serde_json::Value;

/// Upstream's decode-time message for a malformed quantity.
pub(crate) const QUANTITY_FORMAT: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// What a suffix multiplies the number by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Multiplier {
    /// `10^n`: SI prefixes (`m`, `k`, `M`, …) and exponents (`e3`).
    Decimal(i32),
    /// `1024^n`: binary prefixes (`Ki`, `Mi`, …).
    Binary(u32),
}

/// A quantity's text split by upstream's grammar: the number (sign, digits, at most one point)
/// and its suffix.
#[derive(Debug)]
struct Parts<'a> {
    /// The number as written, sign included (`-1.5`).
    number: &'a str,
    negative: bool,
    integer: &'a str,
    fraction: &'a str,
    multiplier: Multiplier,
}

fn split(s: &str) -> Option<Parts<'_>> {
    let s = s.trim();
    let number_end = s
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_digit() || *c == '.' || (*i == 0 && (*c == '+' || *c == '-'))))
        .map_or(s.len(), |(i, _)| i);
    let (number, suffix) = s.split_at(number_end);
    let digits = number.trim_start_matches(['+', '-']);
    if digits.is_empty() || digits == "." || digits.matches('.').count() > 1 {
        return None;
    }
    let (integer, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let multiplier = match suffix {
        "" => Multiplier::Decimal(0),
        "n" => Multiplier::Decimal(-9),
        "u" => Multiplier::Decimal(-6),
        "m" => Multiplier::Decimal(-3),
        "k" => Multiplier::Decimal(3),
        "M" => Multiplier::Decimal(6),
        "G" => Multiplier::Decimal(9),
        "T" => Multiplier::Decimal(12),
        "P" => Multiplier::Decimal(15),
        "E" => Multiplier::Decimal(18),
        "Ki" => Multiplier::Binary(1),
        "Mi" => Multiplier::Binary(2),
        "Gi" => Multiplier::Binary(3),
        "Ti" => Multiplier::Binary(4),
        "Pi" => Multiplier::Binary(5),
        "Ei" => Multiplier::Binary(6),
        _ => {
            let exponent = suffix.strip_prefix(['e', 'E'])?;
            let unsigned = exponent.trim_start_matches(['+', '-']);
            if unsigned.is_empty()
                || !unsigned.bytes().all(|c| c.is_ascii_digit())
                || exponent.len() - unsigned.len() > 1
            {
                return None;
            }
            Multiplier::Decimal(exponent.parse::<i32>().ok()?)
        }
    };
    Some(Parts {
        number,
        negative: number.starts_with('-'),
        integer,
        fraction,
        multiplier,
    })
}

/// The value of a quantity given as a string or a JSON number, `None` when malformed.
pub(crate) fn parse(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => parse_str(s),
        _ => None,
    }
}

fn parse_str(s: &str) -> Option<f64> {
    let parts = split(s)?;
    let base: f64 = parts.number.parse().ok()?;
    let multiplier = match parts.multiplier {
        Multiplier::Decimal(exponent) => 10f64.powi(exponent),
        Multiplier::Binary(power) => 1024f64.powi(i32::try_from(power).ok()?),
    };
    Some(base * multiplier)
}

/// A quantity as upstream quotes it in messages: strings as given, numbers as numbers.
pub(crate) fn display(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The quantity in thousandths, rounded up: upstream's `MilliValue` (CPU in millicores).
/// `None` when malformed; values beyond `i64` saturate.
pub fn milli_value(text: &str) -> Option<i64> {
    scaled_value(text, -3)
}

/// The quantity rounded up to a whole number: upstream's `Value` (bytes, counts).
/// `None` when malformed; values beyond `i64` saturate.
pub fn value(text: &str) -> Option<i64> {
    scaled_value(text, 0)
}

/// The quantity in units of `10^scale`, computed exactly and rounded up (towards +∞).
fn scaled_value(text: &str, scale: i32) -> Option<i64> {
    let parts = split(text)?;
    let digits = parts.integer.bytes().chain(parts.fraction.bytes());
    let mut mantissa: u128 = 0;
    // Decimal exponent of the last digit kept.
    let mut exponent = -i64::try_from(parts.fraction.len()).ok()?;
    // Past 38 significant digits the rest cannot change an `i64` result, but for rounding up.
    let mut dropped_nonzero = false;
    for digit in digits {
        match mantissa
            .checked_mul(10)
            .and_then(|m| m.checked_add(u128::from(digit - b'0')))
        {
            Some(next) => mantissa = next,
            None => {
                exponent += 1;
                dropped_nonzero |= digit != b'0';
            }
        }
    }
    match parts.multiplier {
        Multiplier::Decimal(n) => exponent += i64::from(n),
        Multiplier::Binary(power) => {
            let factor = 1024u128.pow(power);
            mantissa = match mantissa.checked_mul(factor) {
                Some(m) => m,
                None => return Some(saturate(parts.negative)),
            };
        }
    }
    exponent -= i64::from(scale);
    let magnitude: Option<u128> = if exponent >= 0 {
        u32::try_from(exponent)
            .ok()
            .and_then(|e| 10u128.checked_pow(e))
            .and_then(|factor| mantissa.checked_mul(factor))
    } else {
        let divisor = u32::try_from(-exponent)
            .ok()
            .and_then(|e| 10u128.checked_pow(e));
        let inexact = |divisor: u128| !mantissa.is_multiple_of(divisor) || dropped_nonzero;
        match divisor {
            // Towards +∞: truncated for negative values, one more for inexact positive ones.
            Some(divisor) if parts.negative => Some(mantissa / divisor),
            Some(divisor) => Some(mantissa / divisor + u128::from(inexact(divisor))),
            // A divisor beyond u128: the value is a fraction of one unit.
            None => Some(u128::from(mantissa != 0 && !parts.negative)),
        }
    };
    let Some(magnitude) = magnitude.and_then(|m| i64::try_from(m).ok()) else {
        return Some(saturate(parts.negative));
    };
    Some(if parts.negative {
        -magnitude
    } else {
        magnitude
    })
}

fn saturate(negative: bool) -> i64 {
    if negative {
        i64::MIN
    } else {
        i64::MAX
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses() {
        assert_eq!(parse(&json!("500m")), Some(0.5));
        assert_eq!(parse(&json!("1Gi")), Some(1073741824.0));
        assert_eq!(parse(&json!("1e3")), Some(1000.0));
        assert_eq!(parse(&json!(2)), Some(2.0));
        assert_eq!(parse(&json!("-1")), Some(-1.0));
        for bad in ["", "abc", "1.2.3", "1Gb", "1e", ".", "m"] {
            assert_eq!(parse(&json!(bad)), None, "{bad}");
        }
    }

    #[test]
    fn exact_values_round_up() {
        let cases: &[(&str, Option<i64>, Option<i64>)] = &[
            // text, milli_value, value
            ("500m", Some(500), Some(1)),
            ("0.1", Some(100), Some(1)),
            ("1", Some(1000), Some(1)),
            ("2.5", Some(2500), Some(3)),
            ("1e3", Some(1_000_000), Some(1000)),
            ("1E3", Some(1_000_000), Some(1000)),
            ("1k", Some(1_000_000), Some(1000)),
            ("1Ki", Some(1_024_000), Some(1024)),
            ("1Gi", Some(1_073_741_824_000), Some(1_073_741_824)),
            ("1.5Gi", Some(1_610_612_736_000), Some(1_610_612_736)),
            ("128974848", Some(128_974_848_000), Some(128_974_848)),
            ("129e6", Some(129_000_000_000), Some(129_000_000)),
            ("123Mi", Some(128_974_848_000), Some(128_974_848)),
            ("1n", Some(1), Some(1)),
            ("1u", Some(1), Some(1)),
            ("0", Some(0), Some(0)),
            ("0.0001", Some(1), Some(1)),
            ("1.0001m", Some(2), Some(1)),
            ("+3", Some(3000), Some(3)),
            ("-1", Some(-1000), Some(-1)),
            ("-1.5", Some(-1500), Some(-1)),
            ("1e-3", Some(1), Some(1)),
            ("1e-400", Some(1), Some(1)),
            (
                "1.00000000000000000000000000000000000000001",
                Some(1001),
                Some(2),
            ),
            ("1Ei", Some(i64::MAX), Some(1_152_921_504_606_846_976)),
            ("10Ei", Some(i64::MAX), Some(i64::MAX)),
            ("1e400", Some(i64::MAX), Some(i64::MAX)),
            (
                "123456789012345678901234567890123456789012",
                Some(i64::MAX),
                Some(i64::MAX),
            ),
            ("1Gb", None, None),
            ("", None, None),
            ("1.2.3", None, None),
        ];
        for (text, milli, whole) in cases {
            assert_eq!(milli_value(text), *milli, "milli_value({text})");
            assert_eq!(value(text), *whole, "value({text})");
        }
    }
}

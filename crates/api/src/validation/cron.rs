//! CronJob schedules: the standard five-field syntax and `@` descriptors that upstream's cron
//! library accepts, with its error texts.

const DESCRIPTORS: &[&str] = &[
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
];

const MONTHS: &[&str] = &[
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// Checks a schedule; the error is the cron library's message.
pub(crate) fn parse(spec: &str) -> Result<(), String> {
    let spec = spec.trim();
    if spec.is_empty() {
        return Err("empty spec string".to_owned());
    }
    if let Some(rest) = spec.strip_prefix('@') {
        if DESCRIPTORS.contains(&spec) {
            return Ok(());
        }
        if let Some(duration) = rest.strip_prefix("every ") {
            return if go_duration(duration.trim()) {
                Ok(())
            } else {
                Err(format!(
                    "failed to parse duration {spec}: time: invalid duration \"{}\"",
                    duration.trim()
                ))
            };
        }
        return Err(format!("unrecognized descriptor: {spec}"));
    }
    let fields: Vec<&str> = spec.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: [{}]",
            fields.len(),
            fields.join(" ")
        ));
    }
    let bounds: [(u32, u32, &[&str], u32); 5] = [
        (0, 59, &[], 0),
        (0, 23, &[], 0),
        (1, 31, &[], 0),
        (1, 12, MONTHS, 1),
        (0, 6, DAYS, 0),
    ];
    for (i, (field, (min, max, names, first))) in fields.iter().zip(bounds).enumerate() {
        for part in field.split(',') {
            let optional = i == 2 || i == 4;
            range(part, min, max, names, first, optional)?;
        }
    }
    Ok(())
}

fn range(
    expr: &str,
    min: u32,
    max: u32,
    names: &[&str],
    first: u32,
    optional: bool,
) -> Result<(), String> {
    let steps: Vec<&str> = expr.split('/').collect();
    if steps.len() > 2 {
        return Err(format!("too many slashes: {expr}"));
    }
    let bounds: Vec<&str> = steps[0].split('-').collect();
    let (start, end) = if bounds[0] == "*" || (optional && bounds[0] == "?") {
        if bounds.len() > 1 {
            return Err(format!("too many hyphens: {expr}"));
        }
        (min, max)
    } else {
        let start = value(bounds[0], names, first)?;
        let end = match bounds.len() {
            1 => start,
            2 => value(bounds[1], names, first)?,
            _ => return Err(format!("too many hyphens: {expr}")),
        };
        (start, end)
    };
    let (_, end) = match steps.get(1) {
        Some(step) => {
            let step = number(step)?;
            if step == 0 {
                return Err(format!("step of range should be a positive number: {expr}"));
            }
            // `N/step` means N through the maximum.
            if bounds.len() == 1 && bounds[0] != "*" && bounds[0] != "?" {
                (start, max)
            } else {
                (start, end)
            }
        }
        None => (start, end),
    };
    if start < min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({min}): {expr}"
        ));
    }
    if end > max {
        return Err(format!(
            "end of range ({end}) above maximum ({max}): {expr}"
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        ));
    }
    Ok(())
}

fn value(text: &str, names: &[&str], first: u32) -> Result<u32, String> {
    let lower = text.to_ascii_lowercase();
    if let Some(index) = names.iter().position(|n| *n == lower) {
        return Ok(first + index as u32);
    }
    number(text)
}

fn number(text: &str) -> Result<u32, String> {
    let parsed: Result<i64, _> = text.parse();
    match parsed {
        Ok(n) if n < 0 => Err(format!("negative number ({n}) not allowed: {text}")),
        Ok(n) => u32::try_from(n).map_err(|_| {
            format!("failed to parse int from {text}: strconv.Atoi: parsing \"{text}\": value out of range")
        }),
        Err(_) => Err(format!(
            "failed to parse int from {text}: strconv.Atoi: parsing \"{text}\": invalid syntax"
        )),
    }
}

/// Whether `text` is a Go duration such as `1h30m` or `90s`.
fn go_duration(text: &str) -> bool {
    let mut rest = text;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        let unit = ["ns", "us", "µs", "ms", "s", "m", "h"]
            .iter()
            .find(|u| rest.starts_with(**u));
        match unit {
            Some(unit) => rest = &rest[unit.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::parse;

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
    }
}

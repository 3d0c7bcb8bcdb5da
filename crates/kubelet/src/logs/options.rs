//! The options of a container log request (`PodLogOptions` as query parameters), decoded and
//! validated as the upstream kubelet does before it reads anything.

use std::time::Duration;

/// What to read of a container's log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Keep reading as the container writes, until it stops.
    pub follow: bool,
    /// The previous run of the container instead of the current one.
    pub previous: bool,
    /// Prefix each line with its RFC 3339 timestamp.
    pub timestamps: bool,
    /// Only lines written at or after this time.
    pub since: Option<jiff::Timestamp>,
    /// Only the last this many lines of the file.
    pub tail: Option<u64>,
    /// Stop after this many bytes.
    pub limit_bytes: Option<u64>,
}

/// Why the query was refused: the upstream kubelet's two answers.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LogOptionsError {
    /// A value of the wrong type (400).
    #[error("{{\"message\": \"Unable to decode query.\"}}")]
    Decode,
    /// A value out of range, or both `sinceSeconds` and `sinceTime` (422).
    #[error("{{\"message\": \"Invalid request.\"}}")]
    Invalid,
}

/// A query-parameter bool as the API machinery converts it: anything but `false` or `0` (in
/// any case) is true, an empty value too.
fn flag(value: &str) -> bool {
    !matches!(value.to_ascii_lowercase().as_str(), "false" | "0")
}

fn integer(value: &str) -> Result<i64, LogOptionsError> {
    value.parse().map_err(|_| LogOptionsError::Decode)
}

impl LogOptions {
    /// Decodes the query of a `containerLogs` request; `now` anchors `sinceSeconds`.
    pub fn from_query(query: Option<&str>, now: jiff::Timestamp) -> Result<Self, LogOptionsError> {
        let mut options = LogOptions::default();
        let mut since_seconds = None;
        let mut since_time = None;
        let mut tail_lines = None;
        let mut limit_bytes = None;
        for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match key.as_ref() {
                "follow" => options.follow = flag(&value),
                "previous" => options.previous = flag(&value),
                "timestamps" => options.timestamps = flag(&value),
                "sinceSeconds" => since_seconds = Some(integer(&value)?),
                "sinceTime" => {
                    since_time = Some(
                        value
                            .parse::<jiff::Timestamp>()
                            .map_err(|_| LogOptionsError::Decode)?,
                    );
                }
                // `tail` is the old name of `tailLines`; `all` means no tail.
                "tailLines" => tail_lines = Some(integer(&value)?),
                "tail" if value == "all" => tail_lines = None,
                "tail" => tail_lines = Some(integer(&value)?),
                "limitBytes" => limit_bytes = Some(integer(&value)?),
                _ => {}
            }
        }
        // Upstream's ValidatePodLogOptions.
        if since_seconds.is_some() && since_time.is_some() {
            return Err(LogOptionsError::Invalid);
        }
        if let Some(seconds) = since_seconds {
            let seconds = u64::try_from(seconds)
                .ok()
                .filter(|s| *s >= 1)
                .ok_or(LogOptionsError::Invalid)?;
            options.since = Some(
                now.checked_sub(Duration::from_secs(seconds))
                    .unwrap_or(jiff::Timestamp::MIN),
            );
        }
        if let Some(time) = since_time {
            options.since = Some(time);
        }
        if let Some(tail) = tail_lines {
            options.tail = Some(u64::try_from(tail).map_err(|_| LogOptionsError::Invalid)?);
        }
        if let Some(limit) = limit_bytes {
            options.limit_bytes = Some(
                u64::try_from(limit)
                    .ok()
                    .filter(|l| *l >= 1)
                    .ok_or(LogOptionsError::Invalid)?,
            );
        }
        Ok(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> jiff::Timestamp {
        "2024-05-01T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn decodes_every_option() {
        let options = LogOptions::from_query(
            Some("follow=true&previous=1&timestamps=&tailLines=2&limitBytes=10&sinceSeconds=60"),
            now(),
        )
        .unwrap();
        assert_eq!(
            options,
            LogOptions {
                follow: true,
                previous: true,
                timestamps: true,
                since: Some("2024-05-01T11:59:00Z".parse().unwrap()),
                tail: Some(2),
                limit_bytes: Some(10),
            }
        );
        let options = LogOptions::from_query(
            Some("sinceTime=2024-05-01T10%3A00%3A00Z&follow=false&tail=all"),
            now(),
        )
        .unwrap();
        assert_eq!(options.since, Some("2024-05-01T10:00:00Z".parse().unwrap()));
        assert!(!options.follow);
        assert_eq!(options.tail, None);
        assert_eq!(
            LogOptions::from_query(None, now()).unwrap(),
            LogOptions::default()
        );
    }

    #[test]
    fn refuses_as_upstream() {
        for (query, error) in [
            ("tailLines=x", LogOptionsError::Decode),
            ("sinceTime=yesterday", LogOptionsError::Decode),
            ("tailLines=-1", LogOptionsError::Invalid),
            ("limitBytes=0", LogOptionsError::Invalid),
            ("sinceSeconds=0", LogOptionsError::Invalid),
            (
                "sinceSeconds=5&sinceTime=2024-05-01T10:00:00Z",
                LogOptionsError::Invalid,
            ),
        ] {
            assert_eq!(
                LogOptions::from_query(Some(query), now()),
                Err(error),
                "{query}"
            );
        }
    }
}

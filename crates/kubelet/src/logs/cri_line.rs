//! One line of a CRI log file, parsed as upstream's `parseCRILog`.

/// The stream a line was written to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// A parsed CRI log line: `<timestamp> <stream> <tag> <content>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CriLine<'a> {
    /// The timestamp as written (RFC 3339 with nanoseconds), which is how `timestamps` shows it.
    pub timestamp_text: &'a str,
    pub timestamp: jiff::Timestamp,
    pub stream: Stream,
    /// `P`: the runtime split a long line and the next record continues it.
    pub partial: bool,
    /// The content: a full line keeps its newline, a partial one loses it, as upstream.
    pub content: &'a [u8],
}

/// A line that is not in the CRI format.
#[derive(Debug, thiserror::Error)]
pub enum CriLineError {
    #[error("timestamp is not found")]
    NoTimestamp,
    #[error("unexpected timestamp format {text:?}: {source}")]
    Timestamp {
        text: String,
        #[source]
        source: jiff::Error,
    },
    #[error("stream type is not found")]
    NoStream,
    #[error("unexpected stream type {0:?}")]
    StreamType(String),
    #[error("log tag is not found")]
    NoTag,
}

/// The field before the next space, and what follows the space.
fn field(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let space = line.iter().position(|b| *b == b' ')?;
    Some((&line[..space], &line[space + 1..]))
}

/// Parses one line as read from the file (with its newline, if it has one).
pub fn parse(line: &[u8]) -> Result<CriLine<'_>, CriLineError> {
    let (timestamp, rest) = field(line).ok_or(CriLineError::NoTimestamp)?;
    let timestamp_text = std::str::from_utf8(timestamp).map_err(|_| CriLineError::NoTimestamp)?;
    let parsed = timestamp_text
        .parse::<jiff::Timestamp>()
        .map_err(|source| CriLineError::Timestamp {
            text: timestamp_text.to_owned(),
            source,
        })?;
    let (stream, rest) = field(rest).ok_or(CriLineError::NoStream)?;
    let stream = match stream {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        other => {
            return Err(CriLineError::StreamType(
                String::from_utf8_lossy(other).into_owned(),
            ))
        }
    };
    let (tags, mut content) = field(rest).ok_or(CriLineError::NoTag)?;
    // Tags are `:`-separated; the first says whether the line is partial.
    let partial = tags.split(|b| *b == b':').next() == Some(b"P".as_slice());
    if partial {
        if let Some(stripped) = content.strip_suffix(b"\n") {
            content = stripped;
        }
    }
    Ok(CriLine {
        timestamp_text,
        timestamp: parsed,
        stream,
        partial,
        content,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_and_partial_lines() {
        let full = parse(b"2016-10-06T00:17:09.669794202Z stdout F hello world\n").unwrap();
        assert_eq!(full.timestamp_text, "2016-10-06T00:17:09.669794202Z");
        assert_eq!(full.stream, Stream::Stdout);
        assert!(!full.partial);
        assert_eq!(full.content, b"hello world\n");

        let partial = parse(b"2016-10-06T00:17:09.669794203Z stderr P part\n").unwrap();
        assert_eq!(partial.stream, Stream::Stderr);
        assert!(partial.partial);
        assert_eq!(partial.content, b"part");

        // An empty full line, and the time zone kept as written.
        let empty = parse(b"2016-10-06T02:17:09.1+02:00 stdout F \n").unwrap();
        assert_eq!(empty.content, b"\n");
        assert_eq!(
            empty.timestamp,
            "2016-10-06T00:17:09.1Z".parse::<jiff::Timestamp>().unwrap()
        );
    }

    #[test]
    fn malformed_lines() {
        assert!(matches!(parse(b"nospace"), Err(CriLineError::NoTimestamp)));
        assert!(matches!(
            parse(b"yesterday stdout F x\n"),
            Err(CriLineError::Timestamp { .. })
        ));
        assert!(matches!(
            parse(b"2016-10-06T00:17:09Z"),
            Err(CriLineError::NoTimestamp)
        ));
        assert!(matches!(
            parse(b"2016-10-06T00:17:09Z stdin F x\n"),
            Err(CriLineError::StreamType(s)) if s == "stdin"
        ));
        assert!(matches!(
            parse(b"2016-10-06T00:17:09Z stdout F"),
            Err(CriLineError::NoTag)
        ));
    }
}

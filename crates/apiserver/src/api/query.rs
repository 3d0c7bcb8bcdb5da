//! Query parameters of API requests, parsed once with their errors named.

use std::collections::HashMap;

use super::error::ApiError;

/// The query parameters the API understands (unknown ones are ignored, as upstream does).
#[derive(Debug, Default)]
pub(crate) struct Query {
    pub(crate) params: HashMap<String, String>,
}

impl Query {
    /// Parses a raw query string (`a=b&c=d`, percent-encoded).
    pub(crate) fn parse(raw: Option<&str>) -> Query {
        let mut params = HashMap::new();
        for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            params.insert(decode(key), decode(value));
        }
        Query { params }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.params
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// A boolean parameter (`true`, `1`).
    pub(crate) fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1" | "True"))
    }

    /// A non-negative integer parameter.
    pub(crate) fn integer(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(raw) => raw.parse::<i64>().map(Some).map_err(|_| {
                ApiError::bad_request(format!(
                    "invalid value for {key}: {raw:?} is not an integer"
                ))
            }),
        }
    }

    /// `dryRun=All` (the only value upstream accepts).
    pub(crate) fn dry_run(&self) -> Result<bool, ApiError> {
        match self.params.get("dryRun").map(String::as_str) {
            None | Some("") => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "Invalid dry run value: {other:?}, supported values: \"All\""
            ))),
        }
    }
}

/// Percent-decoding with `+` as space (form encoding, which client-go's `url.Values` uses).
fn decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 3 <= bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_client_go_queries() {
        let q = Query::parse(Some(
            "labelSelector=app%3Dweb%2Ctier+in+%28a%2Cb%29&limit=500&watch=1",
        ));
        assert_eq!(q.get("labelSelector"), Some("app=web,tier in (a,b)"));
        assert_eq!(q.integer("limit").unwrap(), Some(500));
        assert!(q.flag("watch"));
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%4"), "%4");
        assert!(Query::parse(Some("limit=x")).integer("limit").is_err());
    }
}

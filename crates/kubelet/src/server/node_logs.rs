//! `GET /logs/<path>` (the `nodes/log` subresource): the node's log directory as Go's
//! `http.FileServer` serves it — a directory as a listing of links, a file as its bytes.

use std::path::{Component, Path, PathBuf};

use bytes::Bytes;
use http::StatusCode;
use http_body_util::BodyExt as _;
use tokio::io::AsyncReadExt as _;
use tokio::sync::mpsc;

use super::response::{stream, text, Body, BoxError};

/// A URL path with its `%XX` escapes decoded (`+` stays a plus, as in paths), or `None` when
/// an escape is malformed or the result is not UTF-8.
pub fn unescape_path(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = std::str::from_utf8(bytes.get(index + 1..index + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The file or directory under `root` that `relative` names, or `None` when it would leave
/// `root` (`..`, absolute parts).
pub fn resolve(root: &Path, relative: &str) -> Option<PathBuf> {
    let mut path = root.to_path_buf();
    for component in Path::new(relative).components() {
        match component {
            Component::Normal(part) => path.push(part),
            Component::CurDir => {}
            Component::RootDir | Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(path)
}

/// A directory listing as Go's `dirList` writes it (names sorted, directories with `/`).
pub fn listing(mut names: Vec<(String, bool)>) -> String {
    names.sort();
    let mut html = String::from(
        "<!doctype html>\n<meta name=\"viewport\" content=\"width=device-width\">\n<pre>\n",
    );
    for (name, is_dir) in names {
        let shown = if is_dir { format!("{name}/") } else { name };
        let href: String = form_urlencoded::byte_serialize(shown.as_bytes())
            .collect::<String>()
            .replace('+', "%20")
            .replace("%2F", "/");
        let escaped = shown
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&#34;");
        html.push_str(&format!("<a href=\"{href}\">{escaped}</a>\n"));
    }
    html.push_str("</pre>\n");
    html
}

/// Answers `/logs/<relative>`.
pub(crate) async fn serve(root: &Path, relative: &str) -> http::Response<Body> {
    let Some(path) = unescape_path(relative).and_then(|relative| resolve(root, &relative)) else {
        return text(StatusCode::BAD_REQUEST, "invalid URL path");
    };
    let meta = match tokio::fs::metadata(&path).await {
        Ok(meta) => meta,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return text(StatusCode::NOT_FOUND, "404 page not found")
        }
        Err(_) => return text(StatusCode::FORBIDDEN, "403 Forbidden"),
    };
    if meta.is_dir() {
        let mut names = Vec::new();
        let mut entries = match tokio::fs::read_dir(&path).await {
            Ok(entries) => entries,
            Err(_) => return text(StatusCode::INTERNAL_SERVER_ERROR, "Error reading directory"),
        };
        while let Ok(Some(entry)) = entries.next_entry().await {
            let is_dir = entry.file_type().await.is_ok_and(|t| t.is_dir());
            names.push((entry.file_name().to_string_lossy().into_owned(), is_dir));
        }
        let mut response = http::Response::new(
            http_body_util::Full::new(Bytes::from(listing(names)))
                .map_err(|never| -> BoxError { match never {} })
                .boxed(),
        );
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/html; charset=utf-8"),
        );
        return response;
    }
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        Err(_) => return text(StatusCode::FORBIDDEN, "403 Forbidden"),
    };
    let (sender, receiver) = mpsc::channel::<Bytes>(4);
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            match file.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if sender
                        .send(Bytes::copy_from_slice(&buffer[..n]))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    });
    stream(None, receiver)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_under_the_root() {
        let root = Path::new("/var/log");
        assert_eq!(resolve(root, ""), Some(PathBuf::from("/var/log")));
        assert_eq!(
            resolve(root, "pods/a.log"),
            Some(PathBuf::from("/var/log/pods/a.log"))
        );
        assert_eq!(resolve(root, "./x"), Some(PathBuf::from("/var/log/x")));
        assert_eq!(resolve(root, "../etc/shadow"), None);
        assert_eq!(resolve(root, "pods/../../etc"), None);
    }

    #[test]
    fn escapes_are_decoded() {
        assert_eq!(unescape_path("a%20b+c").as_deref(), Some("a b+c"));
        assert_eq!(unescape_path("%2e%2e/x").as_deref(), Some("../x"));
        assert_eq!(unescape_path("bad%zz"), None);
        assert_eq!(unescape_path("cut%2"), None);
    }

    #[test]
    fn listing_as_go_writes_it() {
        assert_eq!(
            listing(vec![("syslog".into(), false), ("pods".into(), true), ("a b&c".into(), false)]),
            "<!doctype html>\n<meta name=\"viewport\" content=\"width=device-width\">\n<pre>\n\
             <a href=\"a%20b%26c\">a b&amp;c</a>\n<a href=\"pods/\">pods/</a>\n<a href=\"syslog\">syslog</a>\n</pre>\n"
        );
    }
}

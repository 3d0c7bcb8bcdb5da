//! What the churn examples share: their command-line numbers and the ConfigMap-sized values they
//! write.

/// The `n`th command-line argument as a number, or `default` when it is missing or not one.
pub(crate) fn arg(n: usize, default: u64) -> u64 {
    std::env::args()
        .nth(n)
        .and_then(|raw| raw.parse().ok())
        .unwrap_or(default)
}

/// A ConfigMap-sized JSON value (~1.3 KiB, plus `extra` bytes of padding) that changes every
/// round.
pub(crate) fn value(key: usize, round: usize, extra: usize) -> Vec<u8> {
    let pad = if extra > 0 {
        format!("\"pad\":\"{}\",", "p".repeat(extra))
    } else {
        String::new()
    };
    let data: String = (0..31)
        .map(|i| format!("\"k{i}\":\"value-{key}-{round}-{i}-padding-padding\","))
        .collect();
    format!(
        "{{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{{\"name\":\"cm-{key}\",\"namespace\":\"default\",\"resourceVersion\":\"{round}\",\"labels\":{{\"churn\":\"yes\"}}}},\"data\":{{{data}{pad}\"round\":\"{round}\"}}}}"
    )
    .into_bytes()
}

//! The two stores behind one set of operations, each used the way k3rs's API server would use it.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use etcd_client::{
    Compare, CompareOp, GetOptions, KvClient, Txn, TxnOp, WatchClient, WatchOptions,
};
use futures::StreamExt;
use k3rs_store::{ListOptions, SledStore, Store};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Lists of 10k objects of up to 4 KiB are ~25 MiB, far past gRPC's 4 MiB default (the
/// Kubernetes API server lifts the limit the same way).
const MAX_ETCD_MESSAGE: usize = 256 << 20;

/// A store under test. Cheap to clone: each concurrent client gets its own clone.
#[derive(Clone)]
pub(crate) enum Backend {
    /// The embedded k3rs store.
    K3rs(Arc<SledStore>),
    /// etcd over gRPC on loopback.
    Etcd(Box<EtcdClients>),
}

/// The two etcd services the benchmark uses, on one shared connection.
#[derive(Clone)]
pub(crate) struct EtcdClients {
    kv: KvClient,
    watch: WatchClient,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where the next page of a paged list starts.
#[derive(Debug)]
pub(crate) enum PageCursor {
    K3rs(String),
    Etcd { next_key: Vec<u8>, revision: i64 },
}

/// Events of a live watch, each stamped with the moment it reached the watcher.
#[derive(Debug)]
pub(crate) struct WatchFeed {
    pub(crate) events: mpsc::UnboundedReceiver<Result<(String, Instant)>>,
    task: JoinHandle<()>,
}

impl Drop for WatchFeed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Backend {
    pub(crate) fn etcd(client: &etcd_client::Client) -> Self {
        Backend::Etcd(Box::new(EtcdClients {
            kv: client
                .kv_client()
                .max_decoding_message_size(MAX_ETCD_MESSAGE),
            watch: client
                .watch_client()
                .max_decoding_message_size(MAX_ETCD_MESSAGE),
        }))
    }

    pub(crate) fn name(&self) -> &'static str {
        match self {
            Backend::K3rs(_) => "k3rs",
            Backend::Etcd(_) => "etcd",
        }
    }

    /// Creates `key`, acknowledged once durable. On etcd this is the transaction the Kubernetes
    /// API server sends for a create (put if the key's create revision is 0), so both sides do
    /// the same compare-and-write.
    pub(crate) async fn create(&mut self, key: &str, value: Vec<u8>) -> Result<()> {
        match self {
            Backend::K3rs(store) => {
                store
                    .create(key, value)
                    .await
                    .with_context(|| format!("k3rs: creating {key}"))?;
            }
            Backend::Etcd(etcd) => {
                let kv = &mut etcd.kv;
                let txn = Txn::new()
                    .when([Compare::create_revision(key, CompareOp::Equal, 0)])
                    .and_then([TxnOp::put(key, value, None)]);
                let response = kv
                    .txn(txn)
                    .await
                    .with_context(|| format!("etcd: creating {key}"))?;
                if !response.succeeded() {
                    bail!("etcd: creating {key}: it already exists");
                }
            }
        }
        Ok(())
    }

    /// The store's current revision.
    pub(crate) async fn current_revision(&mut self) -> Result<i64> {
        match self {
            Backend::K3rs(store) => Ok(store.current_revision()),
            Backend::Etcd(etcd) => {
                let kv = &mut etcd.kv;
                let response = kv
                    .get("\0", Some(GetOptions::new().with_count_only()))
                    .await
                    .context("etcd: reading the current revision")?;
                response
                    .header()
                    .map(|header| header.revision())
                    .context("etcd: response without a header")
            }
        }
    }

    /// Lists every key under `prefix` in one request; returns how many there were.
    pub(crate) async fn list_all(&mut self, prefix: &str) -> Result<usize> {
        match self {
            Backend::K3rs(store) => {
                let page = store
                    .list(prefix, ListOptions::default())
                    .await
                    .with_context(|| format!("k3rs: listing {prefix}"))?;
                Ok(page.items.len())
            }
            Backend::Etcd(etcd) => {
                let kv = &mut etcd.kv;
                let response = kv
                    .get(prefix, Some(GetOptions::new().with_prefix()))
                    .await
                    .with_context(|| format!("etcd: listing {prefix}"))?;
                Ok(response.kvs().len())
            }
        }
    }

    /// Reads one page of at most `limit` keys under `prefix`, every page at the revision of the
    /// first (as the Kubernetes API server pages through etcd). Returns the number of keys and
    /// the cursor of the next page, if any.
    pub(crate) async fn list_page(
        &mut self,
        prefix: &str,
        limit: usize,
        cursor: Option<PageCursor>,
    ) -> Result<(usize, Option<PageCursor>)> {
        match self {
            Backend::K3rs(store) => {
                let continue_token = match cursor {
                    None => None,
                    Some(PageCursor::K3rs(token)) => Some(token),
                    Some(PageCursor::Etcd { .. }) => bail!("k3rs: got an etcd page cursor"),
                };
                let options = ListOptions {
                    limit: Some(limit),
                    continue_token,
                    revision: None,
                };
                let page = store
                    .list(prefix, options)
                    .await
                    .with_context(|| format!("k3rs: listing a page of {prefix}"))?;
                Ok((page.items.len(), page.continue_token.map(PageCursor::K3rs)))
            }
            Backend::Etcd(etcd) => {
                let kv = &mut etcd.kv;
                let range_end = prefix_end(prefix.as_bytes());
                let limit = i64::try_from(limit).context("page size out of range")?;
                let mut options = GetOptions::new().with_range(range_end).with_limit(limit);
                let start = match cursor {
                    None => prefix.as_bytes().to_vec(),
                    Some(PageCursor::Etcd { next_key, revision }) => {
                        options = options.with_revision(revision);
                        next_key
                    }
                    Some(PageCursor::K3rs(_)) => bail!("etcd: got a k3rs page cursor"),
                };
                let response = kv
                    .get(start, Some(options))
                    .await
                    .with_context(|| format!("etcd: listing a page of {prefix}"))?;
                let revision = response
                    .header()
                    .map(|header| header.revision())
                    .context("etcd: response without a header")?;
                let next = match response.kvs().last() {
                    Some(last) if response.more() => {
                        let mut next_key = last.key().to_vec();
                        next_key.push(0);
                        Some(PageCursor::Etcd { next_key, revision })
                    }
                    _ => None,
                };
                Ok((response.kvs().len(), next))
            }
        }
    }

    /// Watches `prefix` for changes after `after`; returns once the watch is established.
    pub(crate) async fn watch(&mut self, prefix: &str, after: i64) -> Result<WatchFeed> {
        let (sender, events) = mpsc::unbounded_channel();
        let task = match self {
            Backend::K3rs(store) => {
                let mut stream = store
                    .watch(prefix, after)
                    .await
                    .with_context(|| format!("k3rs: watching {prefix}"))?;
                tokio::spawn(async move {
                    while let Some(event) = stream.next().await {
                        let now = Instant::now();
                        let item = event
                            .map(|event| (event.kv.key, now))
                            .map_err(|err| anyhow::Error::new(err).context("k3rs watch"));
                        if sender.send(item).is_err() {
                            return;
                        }
                    }
                })
            }
            Backend::Etcd(etcd) => {
                let watch = &mut etcd.watch;
                let options = WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(after + 1);
                let mut stream = watch
                    .watch(prefix, Some(options))
                    .await
                    .with_context(|| format!("etcd: watching {prefix}"))?;
                // The first response confirms the watch; only then is it worth timing writes.
                let created = stream
                    .message()
                    .await
                    .with_context(|| format!("etcd: watching {prefix}"))?;
                if !created.is_some_and(|response| response.created()) {
                    bail!("etcd: watching {prefix}: no confirmation of the watch");
                }
                tokio::spawn(async move {
                    loop {
                        let item = match stream.message().await {
                            Ok(Some(response)) => {
                                let now = Instant::now();
                                for event in response.events() {
                                    let Some(kv) = event.kv() else { continue };
                                    let key = String::from_utf8_lossy(kv.key()).into_owned();
                                    if sender.send(Ok((key, now))).is_err() {
                                        return;
                                    }
                                }
                                continue;
                            }
                            Ok(None) => Err(anyhow::anyhow!("etcd watch: stream ended")),
                            Err(err) => Err(anyhow::Error::new(err).context("etcd watch")),
                        };
                        let _ = sender.send(item);
                        return;
                    }
                })
            }
        };
        Ok(WatchFeed { events, task })
    }
}

/// The smallest key greater than every key starting with `prefix` (etcd's range end).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return end;
        }
    }
    // A prefix of only 0xff bytes: the range runs to the end of the keyspace.
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_end_increments_the_last_byte() {
        assert_eq!(prefix_end(b"/bench/list/"), b"/bench/list0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff"), vec![0]);
    }
}

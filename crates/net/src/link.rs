//! Network links through rtnetlink: finding a link by name, deleting the pods' bridge.
//!
//! A netlink socket belongs to the network namespace of the thread that opens it, so each call
//! opens its own connection on the calling thread and serves it from a task it ends before
//! returning.

use futures::TryStreamExt;
use rtnetlink::packet_route::link::{InfoKind, LinkAttribute, LinkInfo, LinkMessage};

/// `ENODEV`: the kernel's answer for a link name or index it does not know.
const ENODEV: i32 = 19;

/// Why a link could not be looked up or deleted.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The netlink socket could not be opened.
    #[error("netlink: open a route socket")]
    Connect(#[source] std::io::Error),
    /// The kernel refused a request.
    #[error("netlink: {operation} link {name}")]
    Request {
        /// What was asked.
        operation: &'static str,
        /// The link.
        name: String,
        /// rtnetlink's error.
        #[source]
        source: rtnetlink::Error,
    },
    /// The name belongs to a link that is not a bridge: it is not ours to delete.
    #[error("link {name} is a {kind}, not a bridge: left alone")]
    NotABridge {
        /// The link.
        name: String,
        /// Its kind (`device` for a link with no kind, such as a physical NIC).
        kind: String,
    },
}

/// What happened to the bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BridgeDeletion {
    /// It existed and was deleted.
    Deleted,
    /// There was none of that name.
    Absent,
}

/// The kind a link reports (`IFLA_INFO_KIND`), if any: virtual links have one, NICs do not.
pub fn link_kind(link: &LinkMessage) -> Option<&InfoKind> {
    link.attributes
        .iter()
        .find_map(|attribute| match attribute {
            LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|info| match info {
                LinkInfo::Kind(kind) => Some(kind),
                _ => None,
            }),
            _ => None,
        })
}

/// Whether deleting `link` as "the bridge named so" is right: only a bridge is.
pub fn check_is_bridge(name: &str, link: &LinkMessage) -> Result<(), LinkError> {
    match link_kind(link) {
        Some(InfoKind::Bridge) => Ok(()),
        other => Err(LinkError::NotABridge {
            name: name.to_owned(),
            kind: other.map_or_else(|| "device".to_owned(), |kind| kind.to_string()),
        }),
    }
}

fn is_no_such_device(error: &rtnetlink::Error) -> bool {
    matches!(error, rtnetlink::Error::NetlinkError(message) if message.raw_code() == -ENODEV)
}

/// An rtnetlink connection opened on the calling thread, served by a task that ends on drop.
struct Connection {
    handle: rtnetlink::Handle,
    task: tokio::task::JoinHandle<()>,
}

impl Connection {
    fn open() -> Result<Self, LinkError> {
        let (connection, handle, _) = rtnetlink::new_connection().map_err(LinkError::Connect)?;
        Ok(Self {
            handle,
            task: tokio::spawn(connection),
        })
    }

    async fn link_by_name(&self, name: &str) -> Result<Option<LinkMessage>, LinkError> {
        let found = self
            .handle
            .link()
            .get()
            .match_name(name)
            .execute()
            .try_next()
            .await;
        match found {
            Ok(link) => Ok(link),
            Err(e) if is_no_such_device(&e) => Ok(None),
            Err(source) => Err(LinkError::Request {
                operation: "get",
                name: name.to_owned(),
                source,
            }),
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Deletes the bridge `name` in the calling thread's network namespace. A missing bridge is not
/// an error; a link of that name that is not a bridge is refused. The pods' veths attached to it
/// stay (they go with the pods' namespaces); the bridge's address and routes go with it.
pub async fn delete_bridge(name: &str) -> Result<BridgeDeletion, LinkError> {
    let connection = Connection::open()?;
    let Some(link) = connection.link_by_name(name).await? else {
        return Ok(BridgeDeletion::Absent);
    };
    check_is_bridge(name, &link)?;
    match connection
        .handle
        .link()
        .del(link.header.index)
        .execute()
        .await
    {
        Ok(()) => {
            tracing::info!(bridge = name, "deleted bridge");
            Ok(BridgeDeletion::Deleted)
        }
        Err(e) if is_no_such_device(&e) => Ok(BridgeDeletion::Absent),
        Err(source) => Err(LinkError::Request {
            operation: "delete",
            name: name.to_owned(),
            source,
        }),
    }
}

/// Whether a link named `name` exists in the calling thread's network namespace.
pub async fn exists(name: &str) -> Result<bool, LinkError> {
    Ok(Connection::open()?.link_by_name(name).await?.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(infos: Option<Vec<LinkInfo>>) -> LinkMessage {
        let mut message = LinkMessage::default();
        message
            .attributes
            .push(LinkAttribute::IfName("k3rs0".to_owned()));
        if let Some(infos) = infos {
            message.attributes.push(LinkAttribute::LinkInfo(infos));
        }
        message
    }

    #[test]
    fn only_a_bridge_is_deleted_as_the_bridge() {
        assert!(
            check_is_bridge("k3rs0", &link(Some(vec![LinkInfo::Kind(InfoKind::Bridge)]))).is_ok()
        );
        let veth = check_is_bridge("k3rs0", &link(Some(vec![LinkInfo::Kind(InfoKind::Veth)])));
        assert_eq!(
            veth.unwrap_err().to_string(),
            "link k3rs0 is a veth, not a bridge: left alone"
        );
        let nic = check_is_bridge("eth0", &link(None));
        assert_eq!(
            nic.unwrap_err().to_string(),
            "link eth0 is a device, not a bridge: left alone"
        );
    }

    #[test]
    fn kind_is_read_from_link_info() {
        assert_eq!(link_kind(&link(None)), None);
        assert_eq!(
            link_kind(&link(Some(vec![LinkInfo::Kind(InfoKind::Vxlan)]))),
            Some(&InfoKind::Vxlan)
        );
    }
}

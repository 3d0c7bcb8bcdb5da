//! `k3rs images import FILE…`: image archives into the node's containerd by hand, through the
//! same importer the air-gap directory uses.

use std::path::PathBuf;

use anyhow::Context;
use k3rs_containerd::{ImageArchive, Importer};

use crate::cli::ImportArgs;

/// The containerd socket of a node: the given endpoint, else the data dir's.
fn socket(args: &ImportArgs) -> PathBuf {
    match args.container_runtime_endpoint.as_deref() {
        Some(endpoint) => PathBuf::from(endpoint.trim_start_matches("unix://")),
        None => k3rs_containerd::paths::socket_path_for(&args.data_dir),
    }
}

/// Imports every archive, printing `<name> <digest> <created|updated|unchanged>` per image;
/// stops at the first archive that fails, naming it.
pub(crate) async fn import(args: ImportArgs) -> anyhow::Result<()> {
    let socket = socket(&args);
    let importer = Importer::connect(&socket).await.with_context(|| {
        format!(
            "connecting to containerd at {} (is k3rs running on this data dir?)",
            socket.display()
        )
    })?;
    for file in &args.files {
        let images = importer
            .import(&ImageArchive::file(file))
            .await
            .with_context(|| format!("importing {}", file.display()))?;
        for image in images {
            let change = match image.change {
                k3rs_containerd::ImageChange::Created => "created",
                k3rs_containerd::ImageChange::Updated => "updated",
                k3rs_containerd::ImageChange::Unchanged => "unchanged",
            };
            println!("{} {} {change}", image.name, image.target);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn args(endpoint: Option<&str>) -> ImportArgs {
        ImportArgs {
            data_dir: PathBuf::from("/srv/k3rs"),
            container_runtime_endpoint: endpoint.map(str::to_owned),
            files: vec![PathBuf::from("a.tar")],
        }
    }

    #[test]
    fn the_socket_follows_the_data_dir_or_the_endpoint() {
        assert_eq!(
            socket(&args(None)),
            Path::new("/srv/k3rs/run/containerd/containerd.sock")
        );
        assert_eq!(
            socket(&args(Some("unix:///run/containerd/containerd.sock"))),
            Path::new("/run/containerd/containerd.sock")
        );
    }
}

//! The node's HTTP API server (`--rpc`): where it binds, the cookie file holding the token
//! that changes need, and the address file that tells the command-line clients where the API
//! is. Both files live in the node's data directory and are removed when the node stops.
//!
//! Several nodes on one machine do not collide: when the usual port is taken, the node binds
//! a free one and says so; the clients read the address file rather than guess.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use powchain_api::{ApiEvent, ApiState, EVENTS_BUFFERED};
use powchain_chain::{ChainSpec, Store};
use powchain_node::driver::Handle;
use powchain_node::wallet;
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

/// The port the API tries first.
pub const RPC_PORT: u16 = 8645;

/// The token for changes, in the data directory (mode 0600).
pub const COOKIE_FILE: &str = "api.cookie";

/// The address the API listens on, in the data directory, for the clients.
pub const ADDRESS_FILE: &str = "api.address";

/// What `--rpc` asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RpcSetting {
    /// No API.
    Off,
    /// Loopback on [`RPC_PORT`], or any free port when that one is taken.
    Default,
    /// Exactly this address (port 0: any free one).
    At(SocketAddr),
}

impl RpcSetting {
    /// `off`, or `ip:port`; absent means the default.
    pub fn parse(text: Option<&str>) -> anyhow::Result<RpcSetting> {
        match text {
            None => Ok(RpcSetting::Default),
            Some("off") => Ok(RpcSetting::Off),
            Some(text) => text.parse().map(RpcSetting::At).with_context(|| {
                format!("--rpc {text:?} is neither `off` nor an address like 127.0.0.1:{RPC_PORT}")
            }),
        }
    }
}

/// A running API server.
pub struct Rpc {
    /// Where it listens.
    pub address: SocketAddr,
    /// The cookie file.
    pub cookie: PathBuf,
    /// Where node events go to reach `/api/v1/events`.
    pub events: broadcast::Sender<ApiEvent>,
    address_file: PathBuf,
    task: JoinHandle<()>,
}

impl Rpc {
    /// Binds as `setting` says, writes the cookie and address files into `dir`, and serves
    /// the API over `handle`. Binding beyond loopback needs `allow_remote`.
    pub async fn start<S: Store + Send + 'static>(
        setting: RpcSetting,
        allow_remote: bool,
        dir: &Path,
        handle: Handle<S>,
        spec: ChainSpec,
    ) -> anyhow::Result<Option<Rpc>> {
        let listener = match setting {
            RpcSetting::Off => return Ok(None),
            RpcSetting::Default => {
                let usual = SocketAddr::from(([127, 0, 0, 1], RPC_PORT));
                match TcpListener::bind(usual).await {
                    Ok(listener) => listener,
                    Err(_) => TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
                        .await
                        .context("cannot bind the API to any loopback port")?,
                }
            }
            RpcSetting::At(address) => {
                if !address.ip().is_loopback() && !allow_remote {
                    bail!(
                        "--rpc {address} would serve the API beyond this machine, where anyone \
                         can read it and try tokens; add --rpc-allow-remote to mean it"
                    );
                }
                TcpListener::bind(address)
                    .await
                    .with_context(|| format!("cannot bind the API to {address}"))?
            }
        };
        let address = listener.local_addr()?;
        if !address.ip().is_loopback() {
            eprintln!(
                "warning: the API listens on {address}, beyond loopback: reads are open to \
                 anyone who can reach it; changes still need the cookie's token"
            );
        }
        let token = hex::encode(rand::random::<[u8; 32]>());
        let cookie = dir.join(COOKIE_FILE);
        write_private(&cookie, &token)?;
        let address_file = dir.join(ADDRESS_FILE);
        write_private(&address_file, &address.to_string())?;
        let (events, _) = broadcast::channel(EVENTS_BUFFERED);
        let state = ApiState::new(handle, Arc::new(spec), token.into(), events.clone()).await;
        let router = powchain_api::router(state);
        let task = tokio::spawn(powchain_api::serve(
            listener,
            router,
            powchain_api::Limits::default(),
        ));
        Ok(Some(Rpc {
            address,
            cookie,
            events,
            address_file,
            task,
        }))
    }

    /// Stops serving and removes the cookie and address files (a stale token helps nobody).
    pub fn stop(self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.cookie);
        let _ = std::fs::remove_file(&self.address_file);
    }
}

/// Writes a private file of the node's data directory (see [`wallet::write_private`]).
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    wallet::write_private(path, text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpc_setting_parses_off_addresses_and_refuses_the_rest() {
        assert_eq!(RpcSetting::parse(None).unwrap(), RpcSetting::Default);
        assert_eq!(RpcSetting::parse(Some("off")).unwrap(), RpcSetting::Off);
        assert_eq!(
            RpcSetting::parse(Some("127.0.0.1:0")).unwrap(),
            RpcSetting::At("127.0.0.1:0".parse().unwrap())
        );
        let error = RpcSetting::parse(Some("localhost")).unwrap_err();
        assert!(format!("{error:#}").contains("neither `off` nor an address"));
    }

    #[cfg(unix)]
    #[test]
    fn private_files_are_for_their_owner_only_even_over_an_old_one() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("powchain-rpc-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(COOKIE_FILE);
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(path.with_extension("tmp"), "older").unwrap();
        std::fs::set_permissions(
            path.with_extension("tmp"),
            std::fs::Permissions::from_mode(0o666),
        )
        .unwrap();
        write_private(&path, "token").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "token");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! `ConnectTo`, `EchoTo`, `SyncWith` and `peers`: the other nodes, named by node number (a
//! socket in the socket directory) or by address.

use std::path::Path;

use powchain_chain::Store;
use powchain_protocol::{Command, PeerId};

use super::{Answer, Session, stopped};
use crate::node::session::PeerRef;
use crate::node::socket_path;

impl<S: Store + 'static> Session<S> {
    /// `ConnectTo`: dials a node number's socket or an address.
    pub(super) async fn connect(&self, peer: PeerRef) -> Answer {
        let address = self.address_of(&peer);
        // Nodes remove their socket when they stop; one killed outright leaves it, and
        // then the dial itself reports that nothing answers.
        if let PeerRef::Id(id) = peer
            && !Path::new(&address).exists()
        {
            return Err(format!("node {id} is not active (no socket at {address})"));
        }
        self.handle.command(Command::Connect(address.clone())).await;
        Ok(Some(format!("connecting to {address}")))
    }

    /// `EchoTo`: a message a connected peer sends back.
    pub(super) async fn echo(&self, peer: PeerRef, message: String) -> Answer {
        let id = self.peer_id(&peer).await?;
        self.handle
            .command(Command::Echo { peer: id, message })
            .await;
        Ok(Some("echo sent".into()))
    }

    /// `SyncWith`: asks a connected peer for its addresses and its chain.
    pub(super) async fn sync(&self, peer: PeerRef) -> Answer {
        let id = self.peer_id(&peer).await?;
        self.handle.command(Command::SyncWith(id)).await;
        Ok(Some("asked for its peers and its chain".into()))
    }

    /// `peers`: one line per connected peer.
    pub(super) async fn peers(&self) -> Answer {
        let peers = self
            .handle
            .inspect(|node| node.peers())
            .await
            .ok_or_else(stopped)?;
        if peers.is_empty() {
            return Ok(Some("no peers".into()));
        }
        Ok(Some(
            peers
                .into_iter()
                .map(|(id, address, direction, node_id, height)| {
                    format!(
                        "peer {id}: {address} ({direction:?}, node {node_id:016x}, height {height})"
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"),
        ))
    }

    /// Where `peer` is dialled: node N's socket in the socket directory, or the address as
    /// typed.
    fn address_of(&self, peer: &PeerRef) -> String {
        match peer {
            PeerRef::Id(id) => socket_path(&self.sockets, *id),
            PeerRef::Address(address) => address.clone(),
        }
    }

    /// The connected peer at `peer`'s address; when there is none, the error says what to
    /// type first.
    async fn peer_id(&self, peer: &PeerRef) -> Result<PeerId, String> {
        let address = self.address_of(peer);
        let lookup = address.clone();
        let found = self
            .handle
            .inspect(move |node| node.peer_by_address(&lookup))
            .await
            .flatten();
        found.ok_or_else(|| match peer {
            PeerRef::Id(id) => format!("not connected to node {id}; type ConnectTo {id} first"),
            PeerRef::Address(_) => {
                format!("not connected to {address}; type connect {address} first")
            }
        })
    }
}

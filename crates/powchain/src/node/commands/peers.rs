//! `ConnectTo`, `EchoTo`, `SyncWith` and `peers`: the other nodes, named by node number (a
//! socket in the socket directory) or by address.

use std::path::Path;

use powchain_chain::Store;
use powchain_protocol::{Command, Direction, PeerId};

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

    /// `disconnect`: closes the connection to a peer. One this node dialled is not dialled
    /// again (else the node would reconnect at once, and the command would seem to do
    /// nothing); one that dialled us may dial again.
    pub(super) async fn disconnect(&self, peer: PeerRef) -> Answer {
        let id = self.peer_id(&peer).await?;
        let summary = self
            .handle
            .inspect(move |node| node.peer_summaries().into_iter().find(|p| p.id == id))
            .await
            .flatten();
        let Some(summary) = summary else {
            return Err("that peer has just gone; `peers` lists who is connected".into());
        };
        let name = peer_name(summary.number, id);
        if summary.direction == Direction::Outbound {
            self.handle.command(Command::Forget(summary.address)).await;
            Ok(Some(format!(
                "disconnected from {name}; not dialled again unless you connect to it"
            )))
        } else {
            self.handle.command(Command::Disconnect(id)).await;
            Ok(Some(format!(
                "disconnected {name}; it dialled us, and may again"
            )))
        }
    }

    /// `forget`: stops dialling an address (node N's socket or as typed) and closes any
    /// connection to it.
    pub(super) async fn forget(&self, peer: PeerRef) -> Answer {
        let address = self.address_of(&peer);
        // An inbound peer named by number is known by its listen address, not its socket.
        if let Ok(id) = self.peer_id(&peer).await {
            self.handle.command(Command::Disconnect(id)).await;
        }
        self.handle.command(Command::Forget(address.clone())).await;
        Ok(Some(format!(
            "forgot {address}: not dialled again unless you connect to it"
        )))
    }

    /// `peers`: one line per connected peer.
    pub(super) async fn peers(&self) -> Answer {
        let peers = self
            .handle
            .inspect(|node| node.peer_summaries())
            .await
            .ok_or_else(stopped)?;
        if peers.is_empty() {
            return Ok(Some("no peers".into()));
        }
        Ok(Some(
            peers
                .into_iter()
                .map(|p| {
                    let direction = format!("{:?}", p.direction).to_lowercase();
                    format!(
                        "{}: {} ({direction}, id {:016x}, height {})",
                        peer_name(p.number, p.id),
                        p.address,
                        p.node_id,
                        p.tip_height
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
}

/// How the user is shown a peer: `node N` when it said its number, else `peer P` (the
/// connection's number here).
pub fn peer_name(number: Option<u32>, peer: PeerId) -> String {
    match number {
        Some(number) => format!("node {number}"),
        None => format!("peer {peer}"),
    }
}

impl<S: Store + 'static> Session<S> {
    /// The connected peer at `peer`'s address; when there is none, the error says what to
    /// type first.
    async fn peer_id(&self, peer: &PeerRef) -> Result<PeerId, String> {
        let address = self.address_of(peer);
        let lookup = address.clone();
        // Node N is the peer that said it is (it may have dialled us, from an address of
        // no meaning), or the one at node N's socket.
        let number = match peer {
            PeerRef::Id(id) => Some(*id),
            PeerRef::Address(_) => None,
        };
        let found = self
            .handle
            .inspect(move |node| {
                let by_number = number.and_then(|n| {
                    node.peer_summaries()
                        .into_iter()
                        .find(|p| p.number == Some(n))
                        .map(|p| p.id)
                });
                by_number.or_else(|| node.peer_by_address(&lookup))
            })
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

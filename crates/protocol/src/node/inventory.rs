//! The inventory manager: which blocks and transfers each peer has, so nothing is sent twice.
//!
//! A block is known to a peer once it told us of it (hello tip, announce, headers, a block it
//! sent) or we sent it (announce, headers, blocks); a transfer once either side sent it.
//! Relay goes to every ready peer that does not know the transfer yet; a new tip is announced
//! (its header; peers fetch the block) to every ready peer that does not know it, or pushed
//! as a compact block to the peers that asked for that (`SendCompact`, `node::compact`).
//!
//! - **A transfer is relayed to a peer at most once, and a tip announced at most once**, for
//!   as long as the peer's bounded memory (`known_inventory_max` of each) holds it.
//! - **A refused transfer costs its sender**: each peer has a budget of refusals per minute
//!   (`refused_transfers_per_minute_max`) that the dispatcher enforces, and the id of one
//!   only a new tip could make good (a spent nonce) is remembered until then, so a resent
//!   one is dropped before any check. One that a transfer still to come could make good (coins
//!   on their way to its sender) is not remembered.

use std::collections::BTreeMap;

use powchain_chain::{BlockHash, Header, Timestamp, Transfer, TxId};

use crate::compact::CompactBlock;
use crate::message::{Message, TRANSFERS_PER_MESSAGE_MAX};
use crate::node::config::NodeConfig;
use crate::node::outbox::Outbox;
use crate::peer::{BoundedSet, PeerId};

#[derive(Debug)]
struct Known {
    blocks: BoundedSet<BlockHash>,
    txs: BoundedSet<TxId>,
    /// Refused transfers in the current minute: when it began, and how many.
    refusals: (Timestamp, u32),
    /// The peer asked for new blocks pushed compact (BIP 152's high-bandwidth mode).
    push_compact: bool,
}

/// Known inventory per ready peer.
#[derive(Debug)]
pub(crate) struct Inventory {
    peers: BTreeMap<PeerId, Known>,
    known_max: usize,
    /// Transfers refused since the last tip change.
    refused: BoundedSet<TxId>,
    refusals_per_minute_max: u32,
}

impl Inventory {
    pub fn new(config: &NodeConfig) -> Inventory {
        Inventory {
            peers: BTreeMap::new(),
            known_max: config.known_inventory_max,
            refused: BoundedSet::new(config.refused_transfers_remembered_max),
            refusals_per_minute_max: config.refused_transfers_per_minute_max,
        }
    }

    pub fn peer_ready(&mut self, peer: PeerId) {
        self.peers.insert(
            peer,
            Known {
                blocks: BoundedSet::new(self.known_max),
                txs: BoundedSet::new(self.known_max),
                refusals: (Timestamp(0), 0),
                push_compact: false,
            },
        );
    }

    /// Whether transfer `id` was refused since the tip last changed.
    pub fn was_refused(&self, id: &TxId) -> bool {
        self.refused.contains(id)
    }

    /// `peer` sent transfer `id` and it was refused for the state it met; `for_good` when
    /// nothing short of a tip change can make it acceptable (remembered until then). False
    /// when the peer is over its budget of refusals for this minute.
    pub fn refused_from(&mut self, peer: PeerId, id: TxId, for_good: bool, now: Timestamp) -> bool {
        if for_good {
            self.refused.insert(id);
        }
        let Some(known) = self.peers.get_mut(&peer) else {
            return true;
        };
        if now.ms_since(known.refusals.0) >= 60_000 {
            known.refusals = (now, 0);
        }
        known.refusals.1 += 1;
        known.refusals.1 <= self.refusals_per_minute_max
    }

    /// The tip changed: a refused transfer may be good now (its sender funded, its nonce
    /// reached).
    pub fn tip_changed(&mut self) {
        self.refused.clear();
    }

    pub fn peer_gone(&mut self, peer: PeerId) {
        self.peers.remove(&peer);
    }

    /// `peer` has block `hash`, or has been sent it.
    pub fn know_block(&mut self, peer: PeerId, hash: BlockHash) {
        if let Some(known) = self.peers.get_mut(&peer) {
            known.blocks.insert(hash);
        }
    }

    /// `peer` has transfer `id`, or has been sent it.
    pub fn know_tx(&mut self, peer: PeerId, id: TxId) {
        if let Some(known) = self.peers.get_mut(&peer) {
            known.txs.insert(id);
        }
    }

    /// Whether `peer` is known to have block `hash`.
    pub fn knows_block(&self, peer: PeerId, hash: &BlockHash) -> bool {
        self.peers
            .get(&peer)
            .is_some_and(|known| known.blocks.contains(hash))
    }

    /// Sends `transfers` to every ready peer that does not know them yet, in messages of at
    /// most [`TRANSFERS_PER_MESSAGE_MAX`].
    pub fn relay(&mut self, transfers: &[Transfer], out: &mut Outbox) {
        if transfers.is_empty() {
            return;
        }
        let ids: Vec<TxId> = transfers.iter().map(Transfer::id).collect();
        for (peer, known) in &mut self.peers {
            let fresh: Vec<Transfer> = transfers
                .iter()
                .zip(&ids)
                .filter(|(_, id)| known.txs.insert(**id))
                .map(|(transfer, _)| transfer.clone())
                .collect();
            for chunk in fresh.chunks(TRANSFERS_PER_MESSAGE_MAX) {
                out.send(*peer, Message::Transactions(chunk.to_vec()));
            }
        }
    }

    /// `peer` asked for new blocks pushed compact (`true`) or announced (`false`).
    pub fn set_push_compact(&mut self, peer: PeerId, push: bool) {
        if let Some(known) = self.peers.get_mut(&peer) {
            known.push_compact = push;
        }
    }

    /// Whether a peer that asked for pushed blocks lacks block `hash`.
    pub fn push_wanted(&self, hash: &BlockHash) -> bool {
        self.peers
            .values()
            .any(|known| known.push_compact && !known.blocks.contains(hash))
    }

    /// Announces the tip `header` to every ready peer that does not know it: its compact
    /// form `pushed`, when there is one, to the peers that asked for pushes, the header to
    /// the others.
    pub fn announce(&mut self, header: Header, pushed: Option<&CompactBlock>, out: &mut Outbox) {
        let hash = header.hash();
        for (peer, known) in &mut self.peers {
            if known.blocks.insert(hash) {
                match pushed {
                    Some(compact) if known.push_compact => {
                        out.send(*peer, Message::CompactBlock(compact.clone()));
                    }
                    _ => out.send(*peer, Message::Announce { header }),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use powchain_chain::{Amount, ChainSpec, Keypair, Memo, Signature};

    use super::*;
    use crate::node::outbox::Output;

    /// A transfer (relay does not look at signatures).
    fn transfer(nonce: u64) -> Transfer {
        Transfer {
            from: Keypair::dev(0).address(),
            to: Keypair::dev(1).address(),
            amount: Amount(1),
            fee: Amount(1),
            nonce,
            memo: Memo::default(),
            signature: Signature([0; 64]),
        }
    }

    fn sent_to(out: &mut Outbox) -> Vec<PeerId> {
        out.drain()
            .into_iter()
            .filter_map(|output| match output {
                Output::Send { peer, .. } => Some(peer),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_transfer_goes_once_to_each_peer_that_lacks_it() {
        let mut inventory = Inventory::new(&NodeConfig::new(1));
        let mut out = Outbox::default();
        inventory.peer_ready(1);
        inventory.peer_ready(2);
        let transfer = transfer(0);
        inventory.know_tx(2, transfer.id());
        inventory.relay(std::slice::from_ref(&transfer), &mut out);
        assert_eq!(sent_to(&mut out), vec![1]);
        inventory.relay(&[transfer], &mut out);
        assert!(sent_to(&mut out).is_empty());
    }

    #[test]
    fn a_tip_is_announced_once_to_each_peer_that_lacks_it() {
        let mut inventory = Inventory::new(&NodeConfig::new(1));
        let mut out = Outbox::default();
        inventory.peer_ready(1);
        inventory.peer_ready(2);
        let header = ChainSpec::dev().genesis_block().header;
        inventory.know_block(1, header.hash());
        inventory.announce(header, None, &mut out);
        assert_eq!(sent_to(&mut out), vec![2]);
        assert!(inventory.knows_block(2, &header.hash()));
        inventory.announce(header, None, &mut out);
        assert!(sent_to(&mut out).is_empty());
        inventory.peer_gone(2);
        assert!(!inventory.knows_block(2, &header.hash()));
    }
}

//! The dispatcher's compact-block inputs (see `node::compact` for the rules): serving a
//! block compact and the transfers a receiver lacks, rebuilding one we asked for or a
//! high-bandwidth peer pushed, and choosing the peers that push.

use std::sync::Arc;

use powchain_chain::{Block, BlockHash, Header, Store, Timestamp, Transaction, Transfer};
use rand::RngExt;

use super::Node;
use crate::compact::{CompactBlock, Rebuild, Rebuilt};
use crate::message::Message;
use crate::peer::{DisconnectReason, PeerId, Unasked, Violation};

impl<S: Store> Node<S> {
    /// `peer` asks for block `hash` in compact form. Charged as the whole block: reading
    /// it and hashing its transfers is what it costs us.
    pub(super) fn on_get_compact_block(&mut self, peer: PeerId, hash: BlockHash, now: Timestamp) {
        let Some(block) = self.block_to_serve(peer, &hash) else {
            return;
        };
        self.charge_served(peer, block.encoded_len(), now);
        let rng = &mut self.rng;
        let compact = self.compact.serve(&block, &hash, || rng.random());
        self.inventory.know_block(peer, hash);
        self.out.send(peer, Message::CompactBlock(compact));
    }

    /// `peer` lacks the transfers at `indexes` of block `hash`, which we served it compact.
    pub(super) fn on_get_block_txn(
        &mut self,
        peer: PeerId,
        hash: BlockHash,
        indexes: &[u32],
        now: Timestamp,
    ) {
        let Some(block) = self.block_to_serve(peer, &hash) else {
            return;
        };
        let ascending = indexes.windows(2).all(|pair| pair[0] < pair[1]);
        let transfers: Option<Vec<Transfer>> = indexes
            .iter()
            .map(|index| match block.txs.get(*index as usize) {
                Some(Transaction::Transfer(transfer)) => Some(transfer.clone()),
                _ => None,
            })
            .collect();
        let Some(transfers) = transfers.filter(|_| ascending) else {
            let reason = DisconnectReason::ProtocolViolation(Violation::BlockPlaces);
            return self.disconnect(peer, reason, now);
        };
        let answer = Message::BlockTxn {
            block: hash,
            transfers,
        };
        self.charge_served(peer, answer.encoded_len(), now);
        self.out.send(peer, answer);
    }

    /// A compact block from `peer`: one we asked of it, or one it pushed because we asked
    /// it to. Rebuilt from the mempool, it is imported at once, or waits for the transfers
    /// we lack, or is fetched whole from the same peer.
    pub(super) fn on_compact_block(&mut self, peer: PeerId, compact: CompactBlock, now: Timestamp) {
        let hash = compact.header.hash();
        if !self.sync.is_in_flight(peer, &hash) {
            if self.compact.may_push(peer) {
                if !self.take_pushed(peer, compact.header, hash, now) {
                    return;
                }
            } else {
                if !self.sync.gave_up_on(peer, &hash) {
                    let reason = DisconnectReason::Unrequested(Unasked::Block);
                    self.disconnect(peer, reason, now);
                }
                return;
            }
        }
        self.inventory.know_block(peer, hash);
        let block_txs_max = self.chain.spec().limits.block_txs_max as usize;
        match Rebuild::start(&compact, &hash, block_txs_max, self.mempool.iter()) {
            Err(error) => {
                // Its block may be good: disconnecting hands the request to another peer.
                self.disconnect(peer, DisconnectReason::InvalidCompactBlock(error), now);
            }
            Ok(Rebuilt::Block(block)) => {
                self.compact.stats.rebuilt_at_once += 1;
                self.import_rebuilt(peer, block, now);
            }
            Ok(Rebuilt::Missing(rebuild)) => {
                let sync = &self.sync;
                if self
                    .compact
                    .has_room_for(peer, |asked| sync.is_in_flight(peer, asked))
                {
                    let indexes = rebuild.missing().to_vec();
                    self.compact.wait_for(peer, hash, rebuild);
                    self.out.send(
                        peer,
                        Message::GetBlockTxn {
                            block: hash,
                            indexes,
                        },
                    );
                } else {
                    self.fetch_whole(peer, hash);
                }
            }
            Ok(Rebuilt::Mismatch | Rebuilt::DuplicateShortIds) => self.fetch_whole(peer, hash),
        }
    }

    /// The transfers a compact block of `peer`'s lacked.
    pub(super) fn on_block_txn(
        &mut self,
        peer: PeerId,
        hash: BlockHash,
        transfers: Vec<Transfer>,
        now: Timestamp,
    ) {
        let Some(rebuild) = self.compact.take(peer, &hash) else {
            let reason = DisconnectReason::Unrequested(Unasked::BlockTransfers);
            return self.disconnect(peer, reason, now);
        };
        match rebuild.fill(transfers) {
            Err(error) => {
                self.disconnect(peer, DisconnectReason::InvalidCompactBlock(error), now);
            }
            Ok(Rebuilt::Block(block)) => {
                self.compact.stats.rebuilt_after_asking += 1;
                self.import_rebuilt(peer, block, now);
            }
            // The root does not match: a collision picked the wrong transfer, or the
            // sender's answer was wrong. The whole block settles it (an invalid one costs
            // the sender then).
            Ok(_) if self.sync.is_in_flight(peer, &hash) => self.fetch_whole(peer, hash),
            Ok(_) => {}
        }
    }

    /// A compact block `peer` pushed unasked (its `header`, which hashes to `hash`): first
    /// its header's announcement (checked as any announced header is, so it costs the
    /// sender a block's work); then, if it is the block after our tip and nobody is
    /// fetching it, a download from this peer already under way. Returns whether to rebuild it; otherwise it is fetched the usual way, or
    /// not at all (we have it, it is not better, the header is bad: then the peer is gone).
    fn take_pushed(
        &mut self,
        peer: PeerId,
        header: Header,
        hash: BlockHash,
        now: Timestamp,
    ) -> bool {
        self.inventory.know_block(peer, hash);
        let queued = match self
            .sync
            .announced(peer, header, &self.chain, now, &mut self.out)
        {
            Ok(queued) => queued,
            Err(refusal) => {
                self.disconnect(peer, refusal.into(), now);
                return false;
            }
        };
        // Queued now, or before by another peer's announcement but not yet asked of anyone.
        if header.prev_hash == self.chain.tip().hash && self.sync.take_pushed(peer, &hash, now) {
            self.compact.stats.pushed_taken += 1;
            return true;
        }
        if queued {
            self.schedule_downloads(now);
        }
        false
    }

    /// `peer` gave us a new tip first: ask it to push the next ones compact (and tell the
    /// one it displaces to stop).
    pub(super) fn delivered_first(&mut self, peer: PeerId) {
        let change = self.compact.delivered_first(peer);
        if let Some(asked) = change.asked {
            self.out.send(
                asked,
                Message::SendCompact {
                    high_bandwidth: true,
                },
            );
        }
        if let Some(stopped) = change.stopped {
            self.out.send(
                stopped,
                Message::SendCompact {
                    high_bandwidth: false,
                },
            );
        }
    }

    /// A block rebuilt from `peer`'s compact block, imported as if it had come whole.
    fn import_rebuilt(&mut self, peer: PeerId, block: Block, now: Timestamp) {
        if self.import_arrived(peer, block, now) {
            self.blocks_imported(now);
        }
    }

    /// Block `hash` to serve `peer`, read from the chain; `None` when it is not there (the
    /// peer is told) or the store failed.
    fn block_to_serve(&mut self, peer: PeerId, hash: &BlockHash) -> Option<Arc<Block>> {
        match self.chain.block(hash) {
            Ok(Some(block)) => Some(block),
            Ok(None) => {
                self.out.send(peer, Message::NotFound(vec![*hash]));
                None
            }
            Err(error) => {
                self.store_failed(&error);
                None
            }
        }
    }

    /// Asks `peer` for block `hash` whole, still in flight from the compact request.
    fn fetch_whole(&mut self, peer: PeerId, hash: BlockHash) {
        self.compact.stats.fell_back += 1;
        self.out.send(peer, Message::GetBlocks(vec![hash]));
    }
}

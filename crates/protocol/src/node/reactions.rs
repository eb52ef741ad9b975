//! The chains of reactions only the dispatcher may start: a new tip (mempool, relay,
//! announce, mining), the miner's blocks, the user's commands.

use powchain_chain::chain::TipChange;
use powchain_chain::{
    Block, BlockHash, ImportError, MempoolError, Placement, Removal, Store, StoreError, Timestamp,
    Transfer, TxId,
};
use rand::RngExt;

use super::Node;
use super::command::Command;
use super::mining::NextWork;
use super::outbox::{Event, Output};
use crate::compact::CompactBlock;
use crate::message::Message;
use crate::peer::{DisconnectReason, PeerId};

impl<S: Store> Node<S> {
    // ---- the chain moved ----------------------------------------------------------------

    /// The one chain of reactions to a new tip: mempool, then relay of the transfers that
    /// are pending again, then the announcement, then mining.
    pub(super) fn on_tip_change(
        &mut self,
        change: &TipChange,
        from: Option<PeerId>,
        now: Timestamp,
    ) {
        if !change.disconnected.is_empty() {
            self.stats.reorgs += 1;
        }
        self.inventory.tip_changed();
        match self
            .mempool
            .on_tip_change(change, self.chain.store(), self.chain.spec(), now)
        {
            Ok(removed) => self.report_dropped(removed),
            Err(error) => self.store_failed(&error),
        }
        // Transfers of blocks that left the best chain are pending again: pass them on, so
        // the miners of the winning branch can include them.
        let returned: Vec<Transfer> = change
            .disconnected
            .iter()
            .flat_map(|block| block.txs.iter().filter_map(|tx| tx.as_transfer()))
            .filter(|transfer| self.mempool.contains(&transfer.id()))
            .cloned()
            .collect();
        self.inventory.relay(&returned, &mut self.out);
        let tip = self.chain.tip();
        self.out.event(Event::TipChanged {
            hash: tip.hash,
            height: tip.height,
            disconnected: change.disconnected.len(),
            connected: change.connected.len(),
            from,
        });
        // Announce the new tip to every peer that does not have it, at once.
        let header = tip.header;
        let pushed = self.compact_to_push(change);
        self.inventory
            .announce(header, pushed.as_ref(), &mut self.out);
        self.remine(now);
    }

    /// The new tip's compact form, for the peers that asked for new blocks pushed: only
    /// when it is one block on the old tip (what their mempools hold the transfers of), and
    /// built only when such a peer lacks it.
    fn compact_to_push(&mut self, change: &TipChange) -> Option<CompactBlock> {
        let [block] = change.connected.as_slice() else {
            return None;
        };
        if !change.disconnected.is_empty() || !self.inventory.push_wanted(&change.new_tip) {
            return None;
        }
        let rng = &mut self.rng;
        Some(self.compact.serve(block, &change.new_tip, || rng.random()))
    }

    /// Tells of every transfer that left the mempool without being confirmed.
    pub(super) fn report_dropped(&mut self, removed: Vec<(TxId, Removal)>) {
        for (id, reason) in removed {
            if reason != Removal::Confirmed {
                self.out.event(Event::TransferDropped { id, reason });
            }
        }
    }

    // ---- mining ---------------------------------------------------------------------------

    /// New transfers: a new template now, or at a later tick (see `mining`).
    pub(super) fn transfers_arrived(&mut self, now: Timestamp) {
        if self.mining.transfers_arrived(now) {
            self.remine(now);
        }
    }

    /// `Mine` and `MineBlocks`: `blocks` blocks now; an empty mempool is refused unless
    /// `allow_empty`.
    fn mine_blocks(&mut self, blocks: u64, allow_empty: bool, now: Timestamp) {
        if blocks == 0 {
            return;
        }
        if self.mempool.is_empty() && !allow_empty {
            self.out.event(Event::NothingToMine);
        } else {
            self.mining.mine_blocks(blocks, allow_empty);
            self.remine(now);
        }
    }

    /// Gives the miner what mining control says it should work on now.
    pub(super) fn remine(&mut self, now: Timestamp) {
        if self.failure.is_some() {
            return self.out.push(Output::Mine(None));
        }
        match self.mining.next_work(now, self.mempool.is_empty()) {
            NextWork::Keep => {}
            NextWork::Stop => self.out.push(Output::Mine(None)),
            NextWork::Template => {
                let template = self.template(now);
                self.out.push(Output::Mine(template));
            }
        }
    }

    pub(super) fn template(&mut self, now: Timestamp) -> Option<Block> {
        let miner = self.config.mining_address();
        let extra_nonce = self.rng.random();
        match self
            .chain
            .block_template(&self.mempool, miner, now, extra_nonce)
        {
            Ok(template) => Some(template.block),
            Err(error) => {
                self.store_failed(&error);
                None
            }
        }
    }

    /// A block from this node's miner.
    pub fn block_mined(&mut self, block: Block, now: Timestamp) {
        let hash = block.hash();
        let txs = block.txs.len();
        match self.chain.import_block(block, now) {
            Ok(outcome) => {
                if outcome.placement == Placement::BestChain {
                    self.stats.blocks_mined += 1;
                    self.out.event(Event::Mined {
                        hash,
                        height: self.chain.tip().height,
                        txs,
                    });
                }
                if self.mining.block_found() == NextWork::Stop {
                    self.out.push(Output::Mine(None));
                }
                if let Some(change) = outcome.tip_change {
                    self.on_tip_change(&change, None, now);
                }
            }
            Err(ImportError::Store(error)) => self.store_failed(&error),
            // A stale template (the tip moved meanwhile) or a bad clock: mine again.
            Err(_) => self.remine(now),
        }
    }

    // ---- the user -----------------------------------------------------------------------

    /// A user command.
    pub fn command(&mut self, command: Command, now: Timestamp) {
        match command {
            Command::Connect(address) => {
                self.addresses.book.add_pinned(&address);
                self.connections.dial(&address, now, &mut self.out);
            }
            Command::Disconnect(peer) => self.disconnect(peer, DisconnectReason::UserRequest, now),
            Command::Forget(address) => {
                self.addresses.book.forget(&address);
                self.connections.dial_failed(&address);
                let connected: Vec<PeerId> = self
                    .connections
                    .iter()
                    .filter(|(_, c)| c.info.address == address || c.listen() == Some(&address))
                    .map(|(id, _)| id)
                    .collect();
                for peer in connected {
                    self.disconnect(peer, DisconnectReason::UserRequest, now);
                }
            }
            Command::Echo { peer, message } => {
                if self.connections.is_ready(peer) {
                    self.out.send(peer, Message::EchoRequest { message });
                }
            }
            Command::SyncWith(peer) => {
                if self.connections.is_ready(peer) {
                    self.addresses.request(peer, true, &mut self.out);
                    self.sync
                        .request_headers(peer, None, &self.chain, now, &mut self.out);
                }
            }
            Command::SubmitTransfer(transfer) => {
                if let Err(error) = self.submit_transfer(transfer, now) {
                    self.out.event(Event::TransferRefused { error });
                }
            }
            // The seed's `Mine` is one block of what is pending.
            Command::MineOnce => self.mine_blocks(1, false, now),
            Command::MineBlocks {
                blocks,
                allow_empty,
            } => self.mine_blocks(blocks, allow_empty, now),
            Command::Automine(on) => match self.mining.set_automine(on) {
                NextWork::Template => self.remine(now),
                NextWork::Stop => self.out.push(Output::Mine(None)),
                NextWork::Keep => {}
            },
            Command::Shutdown => {
                self.save_addresses(now);
                for peer in self.connections.ids() {
                    self.disconnect(peer, DisconnectReason::Shutdown, now);
                }
                self.out.push(Output::Mine(None));
            }
        }
    }

    /// `MakeTransaction`, answered at once: the transfer enters the mempool and is relayed,
    /// or the reason it cannot.
    pub fn submit_transfer(
        &mut self,
        transfer: Transfer,
        now: Timestamp,
    ) -> Result<TxId, MempoolError> {
        if let Some(stopped) = self.stopped_error() {
            return Err(stopped);
        }
        let id = self.take_submitted(&transfer, &self.chain.chain_id(), now)?;
        self.inventory.relay(&[transfer], &mut self.out);
        self.transfers_arrived(now);
        Ok(id)
    }

    /// Why a user's transfer is refused while the node is stopped by a store failure.
    fn stopped_error(&self) -> Option<MempoolError> {
        self.failure.as_ref().map(|failure| {
            MempoolError::Store(StoreError(format!(
                "the node stopped after its database failed: {failure}"
            )))
        })
    }

    /// A user's transfer into the mempool, counted and told as accepted; the caller relays.
    fn take_submitted(
        &mut self,
        transfer: &Transfer,
        chain_id: &BlockHash,
        now: Timestamp,
    ) -> Result<TxId, MempoolError> {
        let (id, evicted) = self.mempool.add(
            transfer.clone(),
            self.chain.store(),
            self.chain.spec(),
            chain_id,
            now,
        )?;
        self.report_dropped(evicted);
        self.stats.transfers_accepted += 1;
        self.out.event(Event::TransferAccepted { id, from: None });
        Ok(id)
    }

    /// Many transfers at once (the API's batch submit): their signatures are checked in one
    /// batch across the cores, then each enters the mempool or is refused, in order, and
    /// the accepted ones are relayed together. One answer per transfer, in order.
    pub fn submit_transfers(
        &mut self,
        transfers: Vec<Transfer>,
        now: Timestamp,
    ) -> Vec<Result<TxId, MempoolError>> {
        if let Some(stopped) = self.stopped_error() {
            return transfers.iter().map(|_| Err(stopped.clone())).collect();
        }
        let chain_id = self.chain.chain_id();
        self.mempool.verify_signatures_ahead(
            &transfers,
            self.chain.store(),
            self.chain.spec(),
            &chain_id,
        );
        let mut accepted = Vec::new();
        let mut answers = Vec::with_capacity(transfers.len());
        for transfer in transfers {
            match self.take_submitted(&transfer, &chain_id, now) {
                Ok(id) => {
                    accepted.push(transfer);
                    answers.push(Ok(id));
                }
                Err(MempoolError::Store(error)) => {
                    self.store_failed(&error);
                    answers.push(Err(MempoolError::Store(error)));
                }
                Err(error) => answers.push(Err(error)),
            }
        }
        self.inventory.relay(&accepted, &mut self.out);
        if !accepted.is_empty() {
            self.transfers_arrived(now);
        }
        answers
    }

    /// Keeps the verified addresses in the store for the next run.
    pub(super) fn save_addresses(&mut self, now: Timestamp) {
        if let Some(keep) = self.addresses.save_now(now)
            && let Some(store) = &mut self.address_store
            && let Err(error) = store.save(&keep)
        {
            self.store_failed(&error);
        }
    }
}

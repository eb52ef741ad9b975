//! The dispatcher's inputs from peers: one frame at a time, each message to the manager that
//! owns it, and the reactions that cross managers (a block in, a hello accepted).

use powchain_chain::tx::first_bad_signature;
use powchain_chain::{
    Block, BlockHash, ImportError, MempoolError, Placement, Store, Timestamp, Transaction,
    Transfer, TxError, TxId,
};

use super::Node;
use super::connections::Pace;
use super::outbox::{Event, Output};
use super::sync::{HeadersTaken, serve};
use crate::frame::Received;
use crate::message::{Hello, Message, PROTOCOL_VERSION};
use crate::netgroup::net_group;
use crate::peer::{Direction, DisconnectReason, PeerId, Unasked, Violation};

impl<S: Store> Node<S> {
    /// A frame from `peer`: one input per frame, whether it decoded or not. Its bytes are
    /// counted first (garbage counts too); bytes that are not a message within its bounds
    /// (`crate::frame` checked them) get a disconnect and a ban.
    pub fn frame_received(&mut self, peer: PeerId, frame: Received, now: Timestamp) {
        let bytes = frame.bytes as u64;
        self.stats.bytes_in += bytes;
        let (per_second, burst_seconds, sustained_ms) = (
            self.config.messages_per_second_max,
            self.config.flood_burst_seconds,
            self.config.flood_sustained_ms,
        );
        // One lookup of the connection for the bytes, the flood window and readiness.
        let Some(connection) = self.connections.get_mut(peer) else {
            return;
        };
        connection.bytes_in += bytes;
        let message = match frame.message {
            Ok(message) => message,
            Err(error) => return self.disconnect(peer, DisconnectReason::BadMessage(error), now),
        };
        // Every message counts, answers to our requests too: no kind is free. Over the
        // budget the peer is read more slowly; only a peer that stays over it is a flood.
        match connection.count_message(now, per_second, burst_seconds, sustained_ms) {
            Pace::Within => {}
            Pace::Over { resume_at } => self.out.push(Output::PauseReading {
                peer,
                until: resume_at,
            }),
            Pace::Flood => return self.disconnect(peer, DisconnectReason::Flood, now),
        }
        let ready = connection.is_ready();
        self.message_received(peer, message, ready, now);
    }

    /// A message within its bounds from a connected peer, handed to its manager.
    pub(super) fn message_received(
        &mut self,
        peer: PeerId,
        message: Message,
        ready: bool,
        now: Timestamp,
    ) {
        match message {
            Message::Hello(hello) if !ready => self.on_hello(peer, hello, now),
            Message::Hello(_) => self.disconnect(
                peer,
                DisconnectReason::ProtocolViolation(Violation::SecondHello),
                now,
            ),
            Message::Goodbye { reason } => {
                // Seed 003: `exit` is answered by `bye`.
                let bye = Message::Goodbye {
                    reason: "bye".into(),
                };
                self.out.send(peer, bye);
                self.disconnect(peer, DisconnectReason::PeerGoodbye(reason), now);
            }
            _ if !ready => self.disconnect(
                peer,
                DisconnectReason::ProtocolViolation(Violation::BeforeHello),
                now,
            ),
            Message::Ping { nonce } => {
                let tip = self.tip_summary();
                self.out.send(peer, Message::Pong { nonce, tip });
            }
            Message::Pong { nonce, tip } => {
                self.liveness.pong(peer, nonce, now);
                self.sync.set_tip(peer, tip);
                self.sync.start_header_sync(&self.chain, now, &mut self.out);
            }
            Message::EchoRequest { message } => {
                self.out.event(Event::EchoRequested {
                    peer,
                    message: message.clone(),
                });
                self.out.send(peer, Message::EchoResponse { message });
            }
            Message::EchoResponse { message } => {
                self.out.event(Event::EchoReplied { peer, message });
            }
            Message::GetAddresses => self.on_get_addresses(peer),
            Message::Addresses(addresses) => self.on_addresses(peer, addresses, now),
            Message::Announce { header } => {
                self.inventory.know_block(peer, header.hash());
                match self
                    .sync
                    .announced(peer, header, &self.chain, now, &mut self.out)
                {
                    Ok(true) => self.schedule_downloads(now),
                    Ok(false) => {}
                    Err(refusal) => self.disconnect(peer, refusal.into(), now),
                }
            }
            Message::GetHeaders { locator } => {
                let (per_second, burst) = (
                    self.config.headers_requests_per_second_max,
                    self.config.headers_requests_burst_seconds,
                );
                let within = self
                    .connections
                    .get_mut(peer)
                    .is_some_and(|c| c.count_headers_request(now, per_second, burst));
                if !within {
                    return self.disconnect(peer, DisconnectReason::TooManyHeadersRequests, now);
                }
                let headers = serve::headers_after(&self.chain, &locator);
                for header in &headers {
                    self.inventory.know_block(peer, header.hash());
                }
                self.out.send(peer, Message::Headers(headers));
            }
            Message::Headers(headers) => {
                let inventory = &mut self.inventory;
                let taken = self.sync.headers_received(
                    peer,
                    headers,
                    &self.chain,
                    now,
                    &mut self.out,
                    |hash| inventory.know_block(peer, hash),
                );
                match taken {
                    Ok(HeadersTaken::Queued) => self.schedule_downloads(now),
                    Ok(HeadersTaken::AskedAgain) => {}
                    Err(refusal) => return self.disconnect(peer, refusal.into(), now),
                }
                // The answer may have ended the sync: the next candidate's turn.
                self.sync.start_header_sync(&self.chain, now, &mut self.out);
            }
            Message::GetBlocks(hashes) => self.on_get_blocks(peer, &hashes, now),
            Message::Blocks(blocks) => self.on_blocks(peer, blocks, now),
            Message::NotFound(hashes) => {
                if self.sync.not_found(peer, &hashes) {
                    self.schedule_downloads(now);
                }
            }
            Message::Transactions(transfers) => self.on_transactions(peer, transfers, now),
            Message::GetCompactBlock(hash) => self.on_get_compact_block(peer, hash, now),
            Message::CompactBlock(compact) => self.on_compact_block(peer, compact, now),
            Message::GetBlockTxn { block, indexes } => {
                self.on_get_block_txn(peer, block, &indexes, now);
            }
            Message::BlockTxn { block, transfers } => {
                self.on_block_txn(peer, block, transfers, now);
            }
            Message::SendCompact { high_bandwidth } => {
                self.inventory.set_push_compact(peer, high_bandwidth);
            }
        }
    }

    pub(super) fn on_hello(&mut self, peer: PeerId, hello: Hello, now: Timestamp) {
        if hello.version != PROTOCOL_VERSION {
            let reason = DisconnectReason::ProtocolVersion {
                ours: PROTOCOL_VERSION,
                theirs: hello.version,
            };
            return self.disconnect(peer, reason, now);
        }
        if hello.genesis != self.chain.chain_id() {
            let reason = DisconnectReason::WrongGenesis {
                ours: self.chain.chain_id(),
                theirs: hello.genesis,
            };
            return self.disconnect(peer, reason, now);
        }
        let Some(connection) = self.connections.get(peer) else {
            return;
        };
        let info = connection.info.clone();
        let connected_at = connection.connected_at;
        if hello.node_id == self.config.node_id {
            if info.direction == Direction::Outbound {
                self.addresses.book.mark_self(&info.address);
            }
            return self.disconnect(peer, DisconnectReason::SelfConnection, now);
        }
        if self.connections.has_node(peer, hello.node_id) {
            return self.disconnect(peer, DisconnectReason::DuplicateConnection, now);
        }
        if info.direction == Direction::Outbound {
            self.addresses.book.mark_verified(&info.address);
        } else if let Some(listen) = &hello.listen
            && self.may_learn(listen)
        {
            // Only a candidate until we have connected to it ourselves.
            self.addresses.book.learn(listen, &net_group(&info.address));
        }
        let tip = hello.tip;
        self.out.event(Event::PeerReady {
            peer,
            address: info.address,
            direction: info.direction,
            node_id: hello.node_id,
            agent: hello.agent.clone(),
            number: hello.number,
            height: tip.height,
        });
        self.connections.set_ready(peer, hello);
        // The peer is ready: every manager that keeps ready peers learns of it.
        self.liveness.peer_ready(peer, connected_at);
        self.sync.peer_ready(peer, tip);
        self.inventory.peer_ready(peer);
        self.inventory.know_block(peer, tip.hash);
        self.sync.start_header_sync(&self.chain, now, &mut self.out);
    }

    pub(super) fn on_get_addresses(&mut self, peer: PeerId) {
        let except: Vec<&str> = self
            .connections
            .get(peer)
            .map(|c| [Some(c.info.address.as_str()), c.listen()])
            .into_iter()
            .flatten()
            .flatten()
            .collect();
        self.addresses.answer(
            peer,
            &except,
            self.config.listen.as_deref(),
            &mut self.rng,
            &mut self.out,
        );
    }

    pub(super) fn on_addresses(&mut self, peer: PeerId, addresses: Vec<String>, now: Timestamp) {
        // Only answers are taken: unasked-for gossip is ignored, so it cannot flood the book.
        let Some(connect_now) = self.addresses.take_request(peer) else {
            return;
        };
        let mut new = 0;
        let source = self
            .connections
            .get(peer)
            .map(|c| net_group(&c.info.address))
            .unwrap_or_default();
        for address in addresses {
            if Some(&address) == self.config.listen.as_ref() || !self.may_learn(&address) {
                continue;
            }
            if self.addresses.book.learn(&address, &source) {
                new += 1;
            }
            if connect_now && self.connections.by_address(&address).is_none() {
                self.connections.dial(&address, now, &mut self.out);
            }
        }
        self.out.event(Event::AddressesLearned { peer, new });
    }

    /// Sends the requested blocks, split into messages that fit a frame.
    pub(super) fn on_get_blocks(&mut self, peer: PeerId, hashes: &[BlockHash], now: Timestamp) {
        let answer = serve::blocks(&self.chain, hashes);
        // What it draws is charged to it: past its budget for block bytes, nothing more is
        // read from it until that is paid back (a syncing peer stays far inside it).
        let bytes: usize = answer
            .batches
            .iter()
            .flatten()
            .map(Block::encoded_len)
            .sum();
        self.charge_served(peer, bytes, now);
        for batch in answer.batches {
            for block in &batch {
                self.inventory.know_block(peer, block.hash());
            }
            self.out.send(peer, Message::Blocks(batch));
        }
        if let Some(error) = answer.failed {
            return self.store_failed(&error);
        }
        if !answer.missing.is_empty() {
            self.out.send(peer, Message::NotFound(answer.missing));
        }
    }

    /// Charges `bytes` of blocks served to `peer` against its budget for them: past it,
    /// nothing more is read from it until that is paid back.
    pub(super) fn charge_served(&mut self, peer: PeerId, bytes: usize, now: Timestamp) {
        let (kib_per_second, burst_seconds) = (
            self.config.served_kib_per_second_max,
            self.config.served_burst_seconds,
        );
        if let Some(connection) = self.connections.get_mut(peer)
            && let Some(until) = connection.charge_served(now, bytes, kib_per_second, burst_seconds)
        {
            self.out.push(Output::PauseReading { peer, until });
        }
    }

    pub(super) fn on_blocks(&mut self, peer: PeerId, blocks: Vec<Block>, now: Timestamp) {
        if blocks.is_empty() {
            return;
        }
        self.verify_block_signatures_ahead(peer, &blocks);
        for block in blocks {
            if !self.import_arrived(peer, block, now) {
                return;
            }
        }
        self.blocks_imported(now);
    }

    /// A block from `peer`, whole or rebuilt from a compact block, imported if it was asked
    /// of it (or asked and then given up on: late is not abuse). False when that ended the
    /// peer's connection or the node (a store failure).
    pub(super) fn import_arrived(&mut self, peer: PeerId, block: Block, now: Timestamp) -> bool {
        let hash = block.hash();
        match self.sync.block_arrived(peer, &hash) {
            None => return false,
            Some(false) => {
                self.disconnect(peer, DisconnectReason::Unrequested(Unasked::Block), now);
                return false;
            }
            Some(true) => {}
        }
        self.inventory.know_block(peer, hash);
        match self.chain.import_block(block, now) {
            Ok(outcome) => {
                self.stats.blocks_accepted += 1;
                if matches!(
                    outcome.placement,
                    Placement::BestChain | Placement::SideBranch
                ) && let Some(connection) = self.connections.get_mut(peer)
                {
                    connection.last_block_at = Some(now);
                }
                if let Placement::Orphan { missing } = outcome.placement {
                    self.sync
                        .orphan_received(peer, &missing, &self.chain, now, &mut self.out);
                }
                if let Some(change) = outcome.tip_change {
                    self.delivered_first(peer);
                    self.on_tip_change(&change, Some(peer), now);
                }
                true
            }
            Err(ImportError::Store(error)) => {
                self.store_failed(&error);
                false
            }
            Err(ImportError::Invalid { error, .. }) if !error.blames_sender() => {
                // Not the sender's fault for sure (our clock, our bookkeeping): drop the
                // block without blaming the peer. A body too big or not matching its
                // header is the sender's doing: that falls to the arm below (the hostile
                // peer suite found such a peer kept, and asked again and again).
                self.stats.blocks_rejected += 1;
                self.sync.block_invalid(&hash);
                true
            }
            Err(error) => {
                self.stats.blocks_rejected += 1;
                self.sync.block_invalid(&hash);
                self.disconnect(peer, DisconnectReason::InvalidBlock(error), now);
                false
            }
        }
    }

    /// After blocks came in: progress, and the next requests.
    pub(super) fn blocks_imported(&mut self, now: Timestamp) {
        self.sync.report_progress(&self.chain, now, &mut self.out);
        // The queue drained a little: a peer whose share was full may be asked for more.
        self.sync.queue_drained(&self.chain, now, &mut self.out);
        self.schedule_downloads(now);
    }

    /// The signatures of every block in the message that was asked of `peer` (its header
    /// is in our header tree, so its work was paid for), checked at once on all cores: one
    /// large batch per message instead of one small one per block. The imports that follow
    /// find them in the signature cache; a bad one is found again, and named, there.
    fn verify_block_signatures_ahead(&mut self, peer: PeerId, blocks: &[Block]) {
        let transfers: Vec<&Transfer> = blocks
            .iter()
            .filter(|block| self.sync.is_in_flight(peer, &block.hash()))
            .flat_map(|block| &block.txs)
            .filter_map(Transaction::as_transfer)
            .collect();
        if transfers.len() > 1 {
            let chain_id = self.chain.chain_id();
            first_bad_signature(&transfers, &chain_id, self.chain.sig_cache());
        }
    }

    /// Hands wanted blocks to the peers that have them.
    pub(super) fn schedule_downloads(&mut self, now: Timestamp) {
        let inventory = &self.inventory;
        self.sync
            .schedule(&self.chain, now, &mut self.out, |peer, hash| {
                inventory.knows_block(peer, hash)
            });
    }

    pub(super) fn on_transactions(
        &mut self,
        peer: PeerId,
        transfers: Vec<Transfer>,
        now: Timestamp,
    ) {
        let mut accepted = Vec::new();
        // Each id hashed once: a transfer reaches a node from each of its peers, and most
        // copies are ones it holds already.
        let ids: Vec<TxId> = transfers.iter().map(Transfer::id).collect();
        // The new ones' signatures in one batch (across the cores) rather than one check
        // each; the adds below find the good ones in the cache.
        let chain_id = self.chain.chain_id();
        let (inventory, mempool) = (&self.inventory, &self.mempool);
        self.mempool.verify_signatures_ahead(
            transfers
                .iter()
                .zip(&ids)
                .filter(|(_, id)| !mempool.contains(id) && !inventory.was_refused(id))
                .map(|(transfer, _)| transfer),
            self.chain.store(),
            self.chain.spec(),
            &chain_id,
        );
        for (transfer, id) in transfers.into_iter().zip(ids) {
            self.inventory.know_tx(peer, id);
            if self.mempool.contains(&id) || self.inventory.was_refused(&id) {
                continue;
            }
            let chain_id = self.chain.chain_id();
            match self.mempool.add(
                transfer.clone(),
                self.chain.store(),
                self.chain.spec(),
                &chain_id,
                now,
            ) {
                Ok((_, evicted)) => {
                    self.report_dropped(evicted);
                    self.stats.transfers_accepted += 1;
                    self.out.event(Event::TransferAccepted {
                        id,
                        from: Some(peer),
                    });
                    accepted.push(transfer);
                }
                // What no state makes right, no honest node relays.
                Err(MempoolError::Tx(error)) if error.breaks_the_rules() => {
                    return self.disconnect(peer, DisconnectReason::InvalidTransaction(error), now);
                }
                Err(MempoolError::Store(error)) => {
                    return self.store_failed(&error);
                }
                // Stale nonces, spent balances, a full pool: normal in a network, not abuse,
                // but each costs the sender part of its budget.
                Err(error) => {
                    let for_good = matches!(
                        error,
                        MempoolError::Tx(TxError::WrongNonce { .. } | TxError::Duplicate(_))
                    );
                    if !self.inventory.refused_from(peer, id, for_good, now) {
                        return self.disconnect(
                            peer,
                            DisconnectReason::TooManyRefusedTransfers,
                            now,
                        );
                    }
                }
            }
        }
        if !accepted.is_empty()
            && let Some(connection) = self.connections.get_mut(peer)
        {
            connection.last_transfer_at = Some(now);
        }
        self.inventory.relay(&accepted, &mut self.out);
        self.transfers_arrived(now);
    }
}

//! What the network is given to do: block discoveries (Poisson, by hash-power share) and
//! the wallet's transfers and rebroadcasts.

use super::*;

impl Simulation {
    pub(super) fn block_found(&mut self) {
        if self.phase != Phase::Running {
            return;
        }
        let next = self.exponential(self.scenario.chain.block_interval.as_secs_f64());
        self.schedule(self.now + next, What::BlockFound);
        let total = self.cumulative_share.last().copied().unwrap_or(0.0);
        let pick = self.rng.random::<f64>() * total;
        let index = self
            .cumulative_share
            .partition_point(|&c| c <= pick)
            .min(self.nodes.len() - 1);
        self.mine_at(index);
    }

    /// `index` finds a block on its current template (a crashed or idle node finds nothing).
    pub(super) fn mine_at(&mut self, index: usize) {
        let Some(mut block) = self.nodes[index].template.clone() else {
            return;
        };
        if !matches!(self.nodes[index].life, Life::Up(_)) {
            return;
        }
        block.header.time = block.header.time.max(self.timestamp(self.now));
        block.header.nonce = self.rng.random();
        miner::mine(&mut block);
        let hash = block.hash();
        self.metrics.mined(MinedBlock {
            hash,
            parent: block.header.prev_hash,
            height: block.header.height.0,
            miner: index,
            at: self.now,
        });
        self.note(format_args!(
            "node {index} mines height {} {} ({} txs)",
            block.header.height,
            hash.short(12),
            block.txs.len()
        ));
        // The adversary learns of its block before its node does: what the node sends about
        // it (an announcement, a compact push) must already meet the withholding filter.
        let release = match self.is_honest(index) {
            true => None,
            false => {
                let header = block.header;
                self.adversary.as_mut().and_then(|a| a.on_own_block(header))
            }
        };
        self.with_node(index, |n, now| n.block_mined(block, now));
        self.publish(index, release);
    }

    /// Picks a random node that is up (honest ones only), if any.
    pub(super) fn random_up_node(&mut self) -> Option<usize> {
        let up: Vec<usize> = self
            .up_nodes()
            .map(|(i, _)| i)
            .filter(|&i| self.is_honest(i))
            .collect();
        (!up.is_empty()).then(|| up[self.rng.random_range(0..up.len())])
    }

    pub(super) fn transfer(&mut self) {
        if self.phase != Phase::Running {
            return;
        }
        let next = self.exponential(1.0 / self.scenario.transactions.rate);
        self.schedule(self.now + next, What::Transfer);
        let Some(index) = self.random_up_node() else {
            return;
        };
        let from = self.rng.random_range(0..WALLET_ACCOUNTS);
        let to = (from + self.rng.random_range(1..WALLET_ACCOUNTS)) % WALLET_ACCOUNTS;
        let amount = self.rng.random_range(1..100u64);
        let key = Keypair::dev(from);
        let transfer = UnsignedTransfer {
            to: Keypair::dev(to).address(),
            amount: Amount(amount),
            fee: self.spec.fee_min,
            nonce: self.wallet_nonces[from as usize],
            memo: Memo::default(),
        }
        .sign(&key, &self.chain_id);
        let sent = transfer.clone();
        match self.with_node(index, |n, now| n.submit_transfer(sent, now)) {
            Some(Ok(id)) => {
                self.wallet_nonces[from as usize] += 1;
                self.metrics.submitted.insert(id, self.now);
                self.pending.insert(id, transfer);
                self.note(format_args!(
                    "wallet: transfer {} from dev {from} (nonce {}) accepted by node {index}",
                    id.short(12),
                    self.wallet_nonces[from as usize] - 1
                ));
            }
            Some(Err(error)) => {
                self.metrics.refused += 1;
                self.note(format_args!(
                    "wallet: node {index} refused a transfer: {error}"
                ));
            }
            None => {}
        }
    }

    /// The wallet forgets what a node has confirmed and sends the rest again.
    pub(super) fn rebroadcast(&mut self) {
        self.schedule(
            self.now + self.scenario.transactions.rebroadcast.0,
            What::Rebroadcast,
        );
        let Some(index) = self.random_up_node() else {
            return;
        };
        let Life::Up(node) = &self.nodes[index].life else {
            return;
        };
        let chain = node.chain();
        self.pending.retain(|_, transfer| {
            let confirmed = chain
                .account(&transfer.from)
                .ok()
                .flatten()
                .unwrap_or_default()
                .nonce;
            transfer.nonce >= confirmed
        });
        let again: Vec<Transfer> = self.pending.values().cloned().collect();
        if !again.is_empty() {
            self.note(format_args!(
                "wallet: {} unconfirmed transfers sent again to node {index}",
                again.len()
            ));
        }
        self.with_node(index, |n, now| {
            for transfer in again {
                let _ = n.submit_transfer(transfer, now);
            }
        });
    }

    // ---- faults -------------------------------------------------------------------------
}

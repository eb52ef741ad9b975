//! `chain`, `block`, `tx` and `mempool`: what this node holds, its best chain and its pending
//! transactions.

use powchain_chain::{BlockName, HashPrefix, Height, Store};

use super::{Answer, Session, stopped};

impl<S: Store + 'static> Session<S> {
    /// `chain`: the tip, its work and difficulty, and the last five blocks.
    pub(super) async fn chain(&self) -> Answer {
        let text = self
            .handle
            .inspect(|node| {
                let chain = node.chain();
                let tip = chain.tip();
                let mut lines = vec![format!(
                    "tip {} at height {}, total work {}, difficulty {:.1} bits",
                    tip.hash,
                    tip.height,
                    tip.chain_work,
                    tip.header.target.difficulty_bits()
                )];
                for height in (tip.height.0.saturating_sub(4)..=tip.height.0).rev() {
                    if let Ok(Some(block)) = chain.block_at(Height(height)) {
                        lines.push(format!(
                            "  {height:>6} {} {} txs",
                            block.hash().short(16),
                            block.txs.len()
                        ));
                    }
                }
                lines.join("\n")
            })
            .await
            .ok_or_else(stopped)?;
        Ok(Some(text))
    }

    /// `block`: one block, by height on the best chain or by hash, with its transactions.
    pub(super) async fn block(&self, which: String) -> Answer {
        let text = self
            .handle
            .inspect(move |node| {
                let chain = node.chain();
                let hash = node
                    .find_block(&which.parse::<BlockName>()?)
                    .map_err(|e| e.to_string())?;
                let block = chain.block(&hash);
                match block {
                    Ok(Some(block)) => Ok(format!(
                        "block {} {}\n  parent {}\n  time {} ms, nonce {}\n{}",
                        block.header.height,
                        block.hash(),
                        block.header.prev_hash.short(16),
                        block.header.time.0,
                        block.header.nonce,
                        block
                            .txs
                            .iter()
                            .map(|tx| format!("  {} {tx}", tx.id().short(16)))
                            .collect::<Vec<_>>()
                            .join("\n")
                    )),
                    Ok(None) => Err(format!("no block {which} on this node")),
                    Err(e) => Err(e.to_string()),
                }
            })
            .await
            .ok_or_else(stopped)??;
        Ok(Some(text))
    }

    /// `tx`: a transaction, pending or on the best chain (through the transaction index),
    /// by its id or the id's first digits.
    pub(super) async fn tx(&self, id: String) -> Answer {
        let prefix: HashPrefix = id.parse().map_err(|e| {
            format!("a transaction is named by its id or the id's first hex digits: {e}")
        })?;
        let text = self
            .handle
            .inspect(move |node| {
                let id = node.find_transfer(&prefix).map_err(|e| e.to_string())?;
                if let Some(transfer) = node.mempool().get(&id) {
                    return Ok(format!(
                        "pending: {} coins, fee {}, nonce {}",
                        transfer.amount, transfer.fee, transfer.nonce
                    ));
                }
                let chain = node.chain();
                let tip = chain.tip().height.0;
                let index = chain
                    .store()
                    .tx_index()
                    .ok_or("this node keeps no transaction index")?;
                let found = index.tx_location(&id).map_err(|e| e.to_string())?;
                if let Some((height, position)) = found
                    && let Some(block) = chain.block_at(height).map_err(|e| e.to_string())?
                    && let Some(tx) = block.txs.get(position as usize)
                {
                    return Ok(format!(
                        "in block {height} ({}): {tx}",
                        crate::client::confirmations(tip.saturating_sub(height.0) + 1)
                    ));
                }
                Err(format!(
                    "transaction {} is neither pending nor on the best chain",
                    id.short(16)
                ))
            })
            .await
            .ok_or_else(stopped)??;
        Ok(Some(text))
    }

    /// `mempool`: how many transactions are pending, and the first 20 of them.
    pub(super) async fn mempool(&self) -> Answer {
        let text = self
            .handle
            .inspect(|node| {
                let transfers = node.mempool().transfers();
                let mut lines = vec![format!("{} pending transactions", transfers.len())];
                for (id, transfer) in transfers.iter().take(20) {
                    lines.push(format!(
                        "  {} {} coins, fee {}, nonce {}",
                        id.short(16),
                        transfer.amount,
                        transfer.fee,
                        transfer.nonce
                    ));
                }
                lines.join("\n")
            })
            .await
            .ok_or_else(stopped)?;
        Ok(Some(text))
    }
}

//! Reads that do not hold up the node: what a read takes from the node's event loop, and
//! what it reads beside it.
//!
//! ```text
//!   request ──> lane (at most LOOP_READS_IN_FLIGHT wait for the loop) ──> the loop: what
//!               lives in memory there (tip, best chain, mempool, the index's key reads)
//!           ──> a blocking thread: block bodies through the store's BlockReader
//!               (decoded and checked against their hash there, not on the loop)
//! ```
//!
//! - **Block bodies off the loop.** A store with a [`BlockReader`] (the redb store) is read
//!   from a blocking thread: a listing of 100 blocks decodes and checks 100 bodies there.
//!   A store without one (in memory, whose blocks are shared, not decoded) hands its bodies
//!   over on the loop, where taking one costs a reference count.
//! - **The loop lane.** However many clients read, at most [`LOOP_READS_IN_FLIGHT`] of
//!   their questions wait for the loop at once; the others wait here. A flood of readers
//!   thus puts at most that many small jobs between the peers' messages and the miner's
//!   blocks, instead of a queue as long as the flood.
//!
//! Each answer is consistent as of its loop step: a block read after it may have left the
//! best chain since (it is still stored, and shown as the loop saw it).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use powchain_chain::{Block, BlockHash, BlockReader, Height, Store};
use powchain_node::driver::Handle;
use powchain_protocol::Node;
use tokio::sync::Semaphore;

use crate::error::ApiError;

/// Reads that may wait for the node's event loop at once (see the module docs).
pub const LOOP_READS_IN_FLIGHT: usize = 2;

/// A block body as the loop step leaves it.
#[derive(Clone, Debug)]
pub enum Body {
    /// Taken on the loop (a store without a reader for other threads).
    Here(Option<Arc<Block>>),
    /// To be read off the loop.
    Read(BlockHash),
}

impl Body {
    /// The body of `hash` on `node`: its hash when `off_loop`, else the block itself.
    pub fn of<S: Store>(node: &Node<S>, hash: BlockHash, off_loop: bool) -> Result<Body, String> {
        if off_loop {
            return Ok(Body::Read(hash));
        }
        node.chain()
            .block(&hash)
            .map(Body::Here)
            .map_err(|e| e.to_string())
    }
}

/// A best-chain transaction the transaction index located: its block and place in it.
#[derive(Clone, Debug)]
pub struct Located {
    pub height: Height,
    pub hash: BlockHash,
    pub position: u32,
    pub body: Body,
}

/// The lane to the loop and the reader beside it.
pub struct Reads {
    lane: Semaphore,
    blocks: Option<Arc<dyn BlockReader>>,
    waiting: AtomicUsize,
    peak_waiting: AtomicUsize,
}

impl Reads {
    /// Reads through `blocks` when the store has a reader.
    pub fn new(blocks: Option<Arc<dyn BlockReader>>) -> Reads {
        Reads {
            lane: Semaphore::new(LOOP_READS_IN_FLIGHT),
            blocks,
            waiting: AtomicUsize::new(0),
            peak_waiting: AtomicUsize::new(0),
        }
    }

    /// Reads for `handle`'s node, through its store's reader if it has one.
    pub async fn of<S: Store + 'static>(handle: &Handle<S>) -> Reads {
        let blocks = handle
            .inspect(|node| node.chain().store().block_reader())
            .await
            .flatten();
        Reads::new(blocks)
    }

    /// Whether block bodies are read off the loop.
    pub fn off_loop(&self) -> bool {
        self.blocks.is_some()
    }

    /// The most reads that ever waited for the loop at once.
    pub fn peak_waiting_for_the_loop(&self) -> usize {
        self.peak_waiting.load(Ordering::Relaxed)
    }

    /// Runs `query` on the loop, through the lane.
    pub async fn on_loop<S: Store + 'static, R: Send + 'static>(
        &self,
        handle: &Handle<S>,
        query: impl FnOnce(&Node<S>) -> R + Send + 'static,
    ) -> Result<R, ApiError> {
        self.in_lane(handle.inspect(query))
            .await?
            .ok_or_else(ApiError::stopped)
    }

    /// Awaits `question` to the loop once the lane has room for it.
    pub async fn in_lane<T>(&self, question: impl Future<Output = T>) -> Result<T, ApiError> {
        let _permit = self.lane.acquire().await.map_err(|_| ApiError::stopped())?;
        let waiting = self.waiting.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak_waiting.fetch_max(waiting, Ordering::Relaxed);
        let answer = question.await;
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        Ok(answer)
    }

    /// The blocks `bodies` name, read off the loop where they were left to be read (`None`
    /// for one no longer stored).
    pub async fn fetch(&self, bodies: Vec<Body>) -> Result<Vec<Option<Arc<Block>>>, ApiError> {
        let Some(reader) = self.blocks.clone() else {
            // Taken on the loop already (a store without a reader): nothing to read here.
            return Ok(bodies
                .into_iter()
                .map(|body| match body {
                    Body::Here(block) => block,
                    Body::Read(_) => None,
                })
                .collect());
        };
        let read = move || {
            let mut blocks: Vec<Option<Arc<Block>>> = Vec::with_capacity(bodies.len());
            let mut last: Option<(BlockHash, Option<Arc<Block>>)> = None;
            for body in bodies {
                let block = match body {
                    Body::Here(block) => block,
                    // Transfers of one block come one after another: it is read once.
                    Body::Read(hash) if last.as_ref().is_some_and(|(h, _)| *h == hash) => {
                        last.as_ref().and_then(|(_, block)| block.clone())
                    }
                    Body::Read(hash) => {
                        let block = reader.block(&hash)?;
                        last = Some((hash, block.clone()));
                        block
                    }
                };
                blocks.push(block);
            }
            Ok::<_, powchain_chain::StoreError>(blocks)
        };
        tokio::task::spawn_blocking(read)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
            .map_err(|e| ApiError::internal(e.to_string()))
    }
}

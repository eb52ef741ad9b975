//! Mining threads: one per core by default, each searching its own nonce range of the
//! current block template, all dropping it within a batch of a newer one.
//!
//! ```text
//!   Miner::mine(template) ──> generation += 1, job = template ──notify──> threads
//!   thread i:  nonces [i * span, (i + 1) * span) in batches of `batch_nonces`
//!              between batches: a newer generation, a solution by another thread, or
//!              shutdown ends the batch loop
//!              range exhausted: next extra nonce in the coinbase (new transaction root,
//!              new midstate), same range again
//!              solution ──> Sender<Solution>
//! ```
//!
//! The threads are plain OS threads, not async tasks: hashing never yields, so each runs at
//! the lowest priority the OS gives a normal thread (nice 19 on Linux) and gets only what the
//! rest of the node leaves of the cores. The search itself
//! is `sha512::mining::NonceSearch`, pure and tested on its own. Nothing here validates
//! blocks: a solution goes to the caller, which imports it like any other block.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use powchain_chain::block::tx_root;
use powchain_chain::{Block, Transaction};

use crate::sha512::Backend;
use crate::sha512::mining::NonceSearch;

/// How the miner runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MinerConfig {
    /// Mining threads.
    pub threads: usize,
    /// The SHA-512 backend (one this CPU lacks runs as portable).
    pub backend: Backend,
    /// Nonces per batch (1..=2^24): between batches a thread checks for newer work, so this
    /// bounds how long stale work goes on (16,384 nonces is well under a millisecond with
    /// AVX-512).
    pub batch_nonces: u64,
    /// Nonces each thread tries before rolling the coinbase's extra nonce; `None` splits the
    /// whole 64-bit nonce space between the threads. The ranges of all threads together must
    /// fit in 64 bits.
    pub range_nonces: Option<u64>,
}

/// The largest batch: about half a second of stale work on the portable backend.
pub const BATCH_NONCES_MAX: u64 = 1 << 24;

impl MinerConfig {
    /// One thread per core, the fastest backend, the default batch.
    pub fn detect() -> MinerConfig {
        MinerConfig {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            backend: Backend::detect(),
            batch_nonces: 1 << 14,
            range_nonces: None,
        }
    }
}

/// A block that meets its target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Solution {
    /// The generation of the work it solves: compare with [`Miner::generation`] to drop a
    /// solution of stale work.
    pub generation: u64,
    /// The block, nonce and (if rolled) coinbase extra nonce set.
    pub block: Block,
    /// The thread that found it.
    pub thread: usize,
}

/// Why the miner could not start.
#[derive(Debug, thiserror::Error)]
pub enum MinerError {
    /// Zero threads, a batch outside 1..=2^24, or ranges that do not fit in 64 bits.
    #[error(
        "miner needs at least one thread, a batch of 1 to 2^24 nonces, and nonce ranges that fit in 64 bits together"
    )]
    Config,
    /// The OS refused a thread.
    #[error("cannot start a mining thread: {0}")]
    Spawn(#[from] std::io::Error),
}

struct Job {
    generation: u64,
    template: Block,
}

struct Shared {
    /// Bumped by every new template, pause and shutdown; threads compare between batches.
    generation: AtomicU64,
    /// The generation a thread has found a solution for: the others stop on it too.
    solved: AtomicU64,
    job: Mutex<Option<Arc<Job>>>,
    wake: Condvar,
    shutdown: AtomicBool,
    hashes: AtomicU64,
    /// Per thread, the newest generation it has seen: how cancellation is measured.
    seen: Vec<AtomicU64>,
    /// Per thread, when it first saw that generation, in nanoseconds since `epoch`.
    seen_at_nanos: Vec<AtomicU64>,
    epoch: Instant,
}

impl Shared {
    fn lock_job(&self) -> MutexGuard<'_, Option<Arc<Job>>> {
        // A thread that panicked while holding the lock left a plain Option behind: usable.
        self.job
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The mining threads.
pub struct Miner {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    config: MinerConfig,
}

impl Miner {
    /// Starts `config.threads` idle threads; solutions go to `solutions`.
    pub fn start(config: MinerConfig, solutions: Sender<Solution>) -> Result<Miner, MinerError> {
        let ranges_fit = match config.range_nonces {
            Some(range) => range > 0 && range.checked_mul(config.threads as u64).is_some(),
            None => true,
        };
        if config.threads == 0
            || !(1..=BATCH_NONCES_MAX).contains(&config.batch_nonces)
            || !ranges_fit
        {
            return Err(MinerError::Config);
        }
        let shared = Arc::new(Shared {
            generation: AtomicU64::new(0),
            solved: AtomicU64::new(0),
            job: Mutex::new(None),
            wake: Condvar::new(),
            shutdown: AtomicBool::new(false),
            hashes: AtomicU64::new(0),
            seen: (0..config.threads).map(|_| AtomicU64::new(0)).collect(),
            seen_at_nanos: (0..config.threads).map(|_| AtomicU64::new(0)).collect(),
            epoch: Instant::now(),
        });
        let mut miner = Miner {
            shared,
            threads: Vec::with_capacity(config.threads),
            config,
        };
        for index in 0..config.threads {
            let worker = Worker {
                index,
                config,
                shared: Arc::clone(&miner.shared),
                solutions: solutions.clone(),
            };
            let handle = std::thread::Builder::new()
                .name(format!("miner-{index}"))
                .spawn(move || worker.run())?;
            miner.threads.push(handle);
        }
        Ok(miner)
    }

    /// Mines `template` from now on, dropping any older work. Returns its generation.
    pub fn mine(&self, template: Block) -> u64 {
        self.replace_job(Some(template))
    }

    /// Stops mining; the threads wait for the next template. Returns the new generation.
    pub fn pause(&self) -> u64 {
        self.replace_job(None)
    }

    fn replace_job(&self, template: Option<Block>) -> u64 {
        let mut job = self.shared.lock_job();
        let generation = self.shared.generation.fetch_add(1, Ordering::SeqCst) + 1;
        *job = template.map(|template| {
            Arc::new(Job {
                generation,
                template,
            })
        });
        self.shared.wake.notify_all();
        generation
    }

    /// The current generation.
    pub fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::SeqCst)
    }

    /// How many threads have seen `generation` (or a newer one): once all have, no thread
    /// works on anything older.
    pub fn threads_on(&self, generation: u64) -> usize {
        self.shared
            .seen
            .iter()
            .filter(|seen| seen.load(Ordering::Acquire) >= generation)
            .count()
    }

    /// When the last thread moved on to `generation`, once every thread has: the moment the
    /// work before it stopped everywhere. Measured by the threads themselves, so a busy
    /// observer does not add its own scheduling delay. (If newer work was published since,
    /// this is when the threads moved on to the newest.)
    pub fn all_on_since(&self, generation: u64) -> Option<Instant> {
        if self.threads_on(generation) < self.shared.seen.len() {
            return None;
        }
        let latest = self
            .shared
            .seen_at_nanos
            .iter()
            .map(|nanos| nanos.load(Ordering::SeqCst))
            .max()?;
        Some(self.shared.epoch + Duration::from_nanos(latest))
    }

    /// Hashes tried since the miner started.
    pub fn hashes(&self) -> u64 {
        self.shared.hashes.load(Ordering::Relaxed)
    }

    /// The configuration it runs with.
    pub fn config(&self) -> MinerConfig {
        self.config
    }
}

impl Drop for Miner {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        self.replace_job(None);
        for handle in self.threads.drain(..) {
            // A thread that panicked has nothing left to clean up.
            let _ = handle.join();
        }
    }
}

/// One mining thread.
struct Worker {
    index: usize,
    config: MinerConfig,
    shared: Arc<Shared>,
    solutions: Sender<Solution>,
}

impl Worker {
    fn run(self) {
        // Hashing takes whatever the cores leave: a mining node stays responsive to its
        // peers, its API and its block checks. Where the OS refuses, it mines as before.
        if let Err(error) =
            thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Min)
        {
            tracing::debug!("miner thread {} keeps its priority: {error:?}", self.index);
        }
        // Whatever ended the work on a job (newer work, a solution, a finished range without
        // a coinbase to roll), the thread goes on only with a newer one.
        let mut done = 0;
        while let Some(job) = self.next_job(done) {
            self.work_on(&job);
            done = job.generation;
        }
    }

    /// Waits for a job of the current generation newer than `done`; `None` at shutdown.
    fn next_job(&self, done: u64) -> Option<Arc<Job>> {
        let mut guard = self.shared.lock_job();
        loop {
            let generation = self.shared.generation.load(Ordering::SeqCst);
            // The time first, then the generation: whoever reads the generation (Acquire)
            // also reads a time at least as new as it.
            if self.shared.seen[self.index].load(Ordering::Acquire) != generation {
                let nanos = self.shared.epoch.elapsed().as_nanos();
                self.shared.seen_at_nanos[self.index]
                    .store(u64::try_from(nanos).unwrap_or(u64::MAX), Ordering::Relaxed);
                self.shared.seen[self.index].store(generation, Ordering::Release);
            }
            if self.shared.shutdown.load(Ordering::SeqCst) {
                return None;
            }
            if let Some(job) = guard.as_ref()
                && job.generation == generation
                && generation > done
                && self.shared.solved.load(Ordering::SeqCst) != generation
            {
                return Some(Arc::clone(job));
            }
            guard = self
                .shared
                .wake
                .wait(guard)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    fn is_current(&self, generation: u64) -> bool {
        self.shared.generation.load(Ordering::Relaxed) == generation
            && self.shared.solved.load(Ordering::Relaxed) != generation
            && !self.shared.shutdown.load(Ordering::Relaxed)
    }

    /// Searches this thread's range of `job`, rolling the extra nonce when it runs out.
    fn work_on(&self, job: &Job) {
        let threads = self.config.threads as u64;
        let span = self.config.range_nonces.unwrap_or(u64::MAX / threads);
        let first = span.saturating_mul(self.index as u64);
        let mut block = job.template.clone();
        let mut search = NonceSearch::new(&block.header);
        let mut rolls = 0u64;
        let mut next = first;
        while self.is_current(job.generation) {
            let end = first.saturating_add(span);
            if next >= end {
                rolls += 1;
                // Thread i's k-th roll adds k * threads + i: distinct across threads and rolls.
                let offset = rolls.wrapping_mul(threads).wrapping_add(self.index as u64);
                if !roll_extra_nonce(&mut block, &job.template, offset) {
                    // No coinbase to roll: this thread's part of the work is done.
                    return;
                }
                search = NonceSearch::new(&block.header);
                next = first;
                continue;
            }
            let count = self.config.batch_nonces.min(end - next);
            let found = search.search(self.config.backend, next, count);
            let tried = found.map_or(count, |nonce| nonce - next + 1);
            self.shared.hashes.fetch_add(tried, Ordering::Relaxed);
            if let Some(nonce) = found {
                block.header.nonce = nonce;
                // Only the first solution of a generation is sent.
                let claimed = self
                    .shared
                    .solved
                    .fetch_max(job.generation, Ordering::SeqCst)
                    < job.generation;
                if claimed {
                    let _ = self.solutions.send(Solution {
                        generation: job.generation,
                        block: block.clone(),
                        thread: self.index,
                    });
                }
                return;
            }
            next += count;
        }
    }
}

/// Sets the coinbase's extra nonce to the template's plus `offset`, and the header's
/// transaction root to match. False when the template has no coinbase to roll.
fn roll_extra_nonce(block: &mut Block, template: &Block, offset: u64) -> bool {
    let Some(Transaction::Coinbase(original)) = template.txs.first() else {
        return false;
    };
    let Some(Transaction::Coinbase(coinbase)) = block.txs.first_mut() else {
        return false;
    };
    coinbase.extra_nonce = original.extra_nonce.wrapping_add(offset);
    block.header.tx_root = tx_root(&block.txs);
    true
}

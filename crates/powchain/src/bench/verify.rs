//! The references the throughput benchmarks are measured against: how many distinct
//! transfers' signatures one core verifies per second, one at a time and in batches, by the
//! consensus rule itself (`powchain_chain::signature`), not through a signature cache (which
//! would make repeats free).

use std::time::{Duration, Instant};

use powchain_chain::signature::{self, Signed};
use powchain_chain::{Amount, BlockHash, Keypair, Memo, Transfer, UnsignedTransfer};

/// Signatures in one batch of the batch reference.
pub const BATCH: usize = 64;

/// How long each reference is measured.
const MEASURED: Duration = Duration::from_secs(2);

/// Distinct signed transfers (16 batches' worth, from ten dev accounts).
pub fn sample_transfers(chain_id: &BlockHash) -> Vec<Transfer> {
    (0..BATCH as u64 * 16)
        .map(|nonce| {
            UnsignedTransfer {
                to: Keypair::dev((nonce + 1) % 10).address(),
                amount: Amount(1),
                fee: Amount(1),
                nonce,
                memo: Memo::default(),
            }
            .sign(&Keypair::dev(nonce % 10), chain_id)
        })
        .collect()
}

/// Signatures verified per second on the calling thread, one at a time, signing bytes
/// included (as the node checks a transfer it has not seen).
pub fn single_rate(transfers: &[Transfer], chain_id: &BlockHash) -> f64 {
    let start = Instant::now();
    let mut verified = 0u64;
    while start.elapsed() < MEASURED {
        for transfer in transfers {
            let bytes = transfer.signing_bytes(chain_id);
            verified += u64::from(transfer.from.verifies(&bytes, &transfer.signature));
        }
    }
    verified as f64 / start.elapsed().as_secs_f64()
}

/// Signatures verified per second on the calling thread in batches of [`BATCH`], signing
/// bytes included.
pub fn batch_rate(transfers: &[Transfer], chain_id: &BlockHash) -> f64 {
    let start = Instant::now();
    let mut verified = 0u64;
    while start.elapsed() < MEASURED {
        for chunk in transfers.chunks_exact(BATCH) {
            let bytes: Vec<Vec<u8>> = chunk.iter().map(|t| t.signing_bytes(chain_id)).collect();
            let batch: Vec<Signed<'_>> = chunk
                .iter()
                .zip(&bytes)
                .map(|(transfer, message)| Signed {
                    key: &transfer.from,
                    message,
                    signature: &transfer.signature,
                })
                .collect();
            if signature::verify_batch(&batch) {
                verified += BATCH as u64;
            }
        }
    }
    verified as f64 / start.elapsed().as_secs_f64()
}

/// Signatures verified per second by `threads` threads at once, each running
/// [`batch_rate`] on its own copy: what the cores give together, which is less than
/// `threads` times one core's rate where cores share execution units or memory bandwidth.
pub fn batch_rate_together(transfers: &[Transfer], chain_id: &BlockHash, threads: usize) -> f64 {
    std::thread::scope(|scope| {
        let runs: Vec<_> = (0..threads)
            .map(|_| scope.spawn(|| batch_rate(transfers, chain_id)))
            .collect();
        runs.into_iter().map(|run| run.join().unwrap_or(0.0)).sum()
    })
}

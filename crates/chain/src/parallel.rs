//! Work spread over the cores when there is enough of it: a block of a hundred transfers
//! hashes and checks them in parallel, a block of three does not pay for waking threads.
//!
//! Results come back in input order, so nothing that depends on them can depend on how the
//! work was split or on thread timing.

use rayon::prelude::*;

/// Fewest items worth spreading over the cores.
pub const PARALLEL_MIN: usize = 64;

/// `items` mapped through `f`, in order; on all cores when there are enough items.
pub fn map<T: Sync, U: Send>(items: &[T], f: impl Fn(&T) -> U + Sync + Send) -> Vec<U> {
    if items.len() < PARALLEL_MIN {
        items.iter().map(f).collect()
    } else {
        items.par_iter().map(f).collect()
    }
}

/// `items` taken `size` at a time and mapped through `f`, in order; on all cores when
/// there are enough items.
pub fn map_chunks<T: Sync, U: Send>(
    items: &[T],
    size: usize,
    f: impl Fn(&[T]) -> U + Sync + Send,
) -> Vec<U> {
    if items.len() < PARALLEL_MIN {
        items.chunks(size).map(f).collect()
    } else {
        items.par_chunks(size).map(f).collect()
    }
}

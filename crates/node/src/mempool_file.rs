//! The mempool kept across a clean restart, as Bitcoin Core's `mempool.dat`: a transfer the
//! node acknowledged as pending is still pending after `quit` and a new start.
//!
//! The file is postcard: a format version, the genesis of the chain it belongs to, and the
//! signed transfers. It is written whole at shutdown (a random temporary file, then a rename:
//! a crash leaves the old file or the new one) and read at start, where every transfer is
//! submitted again and checked like one from a peer: those the chain has confirmed or made
//! invalid meanwhile are dropped. A file of another chain or another version is refused with
//! the reason, never half read. A crash loses what arrived since the last clean shutdown.

use std::path::Path;

use powchain_chain::{BlockHash, Transfer};
use serde::{Deserialize, Serialize};

use crate::wallet::write_private;

/// The file name in a node's data directory.
pub const MEMPOOL_FILE: &str = "mempool.dat";

/// The format version written in the file.
const VERSION: u32 = 1;

/// Most transfers read back (a file larger than a full mempool is not ours).
const TRANSFERS_MAX: usize = 1_000_000;

#[derive(Serialize, Deserialize)]
struct MempoolFile {
    version: u32,
    genesis: BlockHash,
    transfers: Vec<Transfer>,
}

/// Why a mempool file was not read.
#[derive(Debug, thiserror::Error)]
pub enum MempoolFileError {
    /// Reading or writing the file failed.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        error: std::io::Error,
    },
    /// The bytes are not a mempool file of this format.
    #[error("{path} is not a mempool file of this version: {reason}")]
    Format {
        /// The file.
        path: String,
        /// What did not decode.
        reason: String,
    },
    /// The file belongs to another chain.
    #[error("{path} holds the mempool of another chain (genesis {theirs}, ours {ours})")]
    OtherChain {
        /// The file.
        path: String,
        /// The genesis in the file.
        theirs: String,
        /// Ours.
        ours: String,
    },
}

/// Writes `transfers` to `path` for the chain with `genesis`, replacing the file whole.
pub fn save<'a>(
    path: &Path,
    genesis: BlockHash,
    transfers: impl IntoIterator<Item = &'a Transfer>,
) -> Result<(), MempoolFileError> {
    let file = MempoolFile {
        version: VERSION,
        genesis,
        transfers: transfers.into_iter().cloned().collect(),
    };
    let io = |error| MempoolFileError::Io {
        path: path.display().to_string(),
        error,
    };
    let bytes = postcard::to_stdvec(&file).map_err(|e| io(std::io::Error::other(e)))?;
    write_private(path, &bytes).map_err(io)
}

/// The transfers saved in `path` for the chain with `genesis`, in the order they were saved;
/// none when there is no file.
pub fn load(path: &Path, genesis: BlockHash) -> Result<Vec<Transfer>, MempoolFileError> {
    let shown = || path.display().to_string();
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => {
            return Err(MempoolFileError::Io {
                path: shown(),
                error,
            });
        }
    };
    let format = |reason: String| MempoolFileError::Format {
        path: shown(),
        reason,
    };
    let file: MempoolFile = postcard::from_bytes(&bytes).map_err(|e| format(e.to_string()))?;
    if file.version != VERSION {
        return Err(format(format!(
            "version {}, this node reads {VERSION}",
            file.version
        )));
    }
    if file.genesis != genesis {
        return Err(MempoolFileError::OtherChain {
            path: shown(),
            theirs: file.genesis.short(16),
            ours: genesis.short(16),
        });
    }
    if file.transfers.len() > TRANSFERS_MAX {
        return Err(format(format!(
            "{} transfers, more than any mempool holds",
            file.transfers.len()
        )));
    }
    Ok(file.transfers)
}

#[cfg(test)]
mod tests {
    use powchain_chain::{Amount, ChainSpec, Keypair, Memo, UnsignedTransfer};

    use super::*;

    fn transfer(nonce: u64) -> Transfer {
        let spec = ChainSpec::dev();
        UnsignedTransfer {
            to: Keypair::dev(1).address(),
            amount: Amount(5),
            fee: Amount(1),
            nonce,
            memo: Memo::default(),
        }
        .sign(&Keypair::dev(0), &spec.genesis_hash())
    }

    #[test]
    fn transfers_come_back_in_order_and_only_on_their_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MEMPOOL_FILE);
        let genesis = ChainSpec::dev().genesis_hash();
        assert!(
            load(&path, genesis).unwrap().is_empty(),
            "no file, no transfers"
        );
        let saved = vec![transfer(0), transfer(1), transfer(2)];
        save(&path, genesis, &saved).unwrap();
        assert_eq!(load(&path, genesis).unwrap(), saved);
        let other = BlockHash::ZERO;
        assert!(matches!(
            load(&path, other),
            Err(MempoolFileError::OtherChain { .. })
        ));
    }

    #[test]
    fn a_damaged_or_foreign_file_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MEMPOOL_FILE);
        let genesis = ChainSpec::dev().genesis_hash();
        save(&path, genesis, &[transfer(0)]).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.truncate(bytes.len() - 10);
        std::fs::write(&path, &bytes).unwrap();
        let error = load(&path, genesis).unwrap_err();
        assert!(matches!(error, MempoolFileError::Format { .. }), "{error}");
        std::fs::write(&path, b"not a mempool").unwrap();
        assert!(load(&path, genesis).is_err());
    }
}

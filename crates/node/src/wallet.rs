//! Wallet keys, in their own file: never in the chain database.
//!
//! The file is plain text, one key per line: the 32-byte ed25519 secret in hex, a space, and
//! its address in hex (checked on load, so a damaged line is caught). Lines starting with `#`
//! are comments. It is created with mode 0600, and a wallet file that other users can read is
//! refused, as ssh refuses such a private key. Changes are written to a temporary file in the
//! same directory and renamed over the old one, so a crash leaves the old wallet or the new
//! one, never half of one.

use std::io::Write;
use std::path::{Path, PathBuf};

use powchain_chain::keys::{Address, Keypair};

/// Largest wallet file read, in bytes (about 7,000 keys).
pub const WALLET_BYTES_MAX: u64 = 1 << 20;

/// Why a wallet could not be used.
#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    /// The file could not be read or written.
    #[error("wallet {path}: {source}")]
    Io {
        /// The wallet file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Group or others may read the file.
    #[error("wallet {path} can be read by other users (mode {mode:o}); run: chmod 600 {path}")]
    Exposed {
        /// The wallet file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file is larger than [`WALLET_BYTES_MAX`].
    #[error("wallet {path} is larger than {WALLET_BYTES_MAX} bytes")]
    TooLarge {
        /// The wallet file.
        path: PathBuf,
    },
    /// A line is not `secret address` in hex, or the address is not the secret's.
    #[error("wallet {path}, line {line}: {reason}")]
    BadLine {
        /// The wallet file.
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// The keys of one wallet file.
pub struct Wallet {
    path: PathBuf,
    keys: Vec<Keypair>,
}

impl Wallet {
    /// Loads the wallet at `path`, or starts an empty one there (the file is written when the
    /// first key is added).
    pub fn open(path: &Path) -> Result<Wallet, WalletError> {
        let io = |source| WalletError::Io {
            path: path.to_owned(),
            source,
        };
        let metadata = match std::fs::metadata(path) {
            Ok(metadata) => metadata,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Wallet {
                    path: path.to_owned(),
                    keys: Vec::new(),
                });
            }
            Err(e) => return Err(io(e)),
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = metadata.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(WalletError::Exposed {
                    path: path.to_owned(),
                    mode,
                });
            }
        }
        if metadata.len() > WALLET_BYTES_MAX {
            return Err(WalletError::TooLarge {
                path: path.to_owned(),
            });
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        let mut keys = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |reason| WalletError::BadLine {
                path: path.to_owned(),
                line: index + 1,
                reason,
            };
            let (secret, address) = line
                .split_once(' ')
                .ok_or_else(|| bad("expected a secret and an address, in hex"))?;
            let mut seed = [0u8; 32];
            hex::decode_to_slice(secret, &mut seed)
                .map_err(|_| bad("the secret is not 64 hex digits"))?;
            let key = Keypair::from_secret(seed);
            let address: Address = address
                .trim()
                .parse()
                .map_err(|_| bad("the address is not 64 hex digits"))?;
            if key.address() != address {
                return Err(bad("the address does not belong to the secret"));
            }
            keys.push(key);
        }
        Ok(Wallet {
            path: path.to_owned(),
            keys,
        })
    }

    /// The wallet's keys, oldest first.
    pub fn keys(&self) -> &[Keypair] {
        &self.keys
    }

    /// The file it lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Adds a key and writes the file (mode 0600) before returning.
    pub fn add(&mut self, key: Keypair) -> Result<(), WalletError> {
        self.keys.push(key);
        self.save()
    }

    fn save(&self) -> Result<(), WalletError> {
        let io = |source| WalletError::Io {
            path: self.path.clone(),
            source,
        };
        let mut text = String::from(
            "# powchain wallet: secret key, then address, in hex. Keep this file private.\n",
        );
        for key in &self.keys {
            text.push_str(&format!(
                "{} {}\n",
                hex::encode(key.secret()),
                key.address()
            ));
        }
        write_private(&self.path, text.as_bytes()).map_err(io)
    }
}

/// Writes `bytes` to `path`, readable by this user only (0600), replacing the file whole: they
/// go to a new temporary file beside it first, which is synced and renamed over it, so a crash
/// leaves the old file or the new one. The temporary file has a random name and is created
/// exclusively (`O_EXCL`, 0600 from its first byte), so nothing planted in the directory (a
/// symlink to a file of the attacker's, a file they can read) is ever written through; the
/// rename replaces a symlink at `path` instead of following it. The wallet and the API's
/// cookie file are written this way.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut file = tempfile::Builder::new()
        .prefix(".powchain-")
        .suffix(".tmp")
        .tempfile_in(directory)?;
    file.write_all(bytes)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|error| error.error)?;
    // The rename is durable once the directory is.
    #[cfg(unix)]
    std::fs::File::open(directory)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("powchain-wallet-{name}-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        path
    }

    #[cfg(unix)]
    #[test]
    fn a_planted_symlink_is_never_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "the attacker's file").unwrap();
        let path = dir.path().join("wallet.keys");
        // Where the old code wrote its temporary file, and the file itself.
        std::os::unix::fs::symlink(&victim, path.with_extension("tmp")).unwrap();
        let linked = dir.path().join("api.cookie");
        std::os::unix::fs::symlink(&victim, &linked).unwrap();
        write_private(&path, b"secret").unwrap();
        write_private(&linked, b"token").unwrap();
        assert_eq!(
            std::fs::read_to_string(&victim).unwrap(),
            "the attacker's file"
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"secret");
        assert_eq!(std::fs::read(&linked).unwrap(), b"token");
        assert!(
            !std::fs::symlink_metadata(&linked)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        let leftovers = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|entry| {
                let name = entry.as_ref().unwrap().file_name();
                name.to_string_lossy().starts_with(".powchain-")
            })
            .count();
        assert_eq!(leftovers, 0, "no temporary file left behind");
    }

    #[test]
    fn keys_round_trip_in_a_private_file() {
        let path = temp("round-trip");
        let mut wallet = Wallet::open(&path).unwrap();
        assert!(wallet.keys().is_empty());
        wallet.add(Keypair::dev(1)).unwrap();
        wallet.add(Keypair::dev(2)).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let wallet = Wallet::open(&path).unwrap();
        let addresses: Vec<Address> = wallet.keys().iter().map(Keypair::address).collect();
        assert_eq!(
            addresses,
            vec![Keypair::dev(1).address(), Keypair::dev(2).address()]
        );
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn exposed_and_damaged_files_are_refused() {
        let path = temp("damaged");
        let mut wallet = Wallet::open(&path).unwrap();
        wallet.add(Keypair::dev(1)).unwrap();
        let good = std::fs::read_to_string(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(matches!(
                Wallet::open(&path),
                Err(WalletError::Exposed { .. })
            ));
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let other = Keypair::dev(2).address().to_string();
        let line = good.lines().nth(1).unwrap();
        let (secret, _) = line.split_once(' ').unwrap();
        for (content, reason) in [
            (format!("{secret} {other}\n"), "does not belong"),
            (format!("{secret}\n"), "expected a secret"),
            (format!("zz {other}\n"), "not 64 hex"),
            (format!("{secret}00 {other}\n"), "not 64 hex"),
        ] {
            std::fs::write(&path, content).unwrap();
            let error = Wallet::open(&path).err().expect("refused").to_string();
            assert!(
                error.contains(reason) && error.contains("line 1"),
                "{error}"
            );
        }
        std::fs::remove_file(&path).unwrap();
    }
}

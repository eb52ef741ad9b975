//! Chain specs: the rules and genesis of a network.
//!
//! A [`ChainSpec`] fixes everything nodes must agree on: the genesis allocations and time,
//! the difficulty and how it retargets, the block reward, the transfer rules and the limits.
//! Its genesis block is a pure function of the spec, and the genesis header's parent field is
//! the digest of the rules, so the genesis hash names the whole rule set: two nodes with the
//! same genesis hash follow the same rules.
//!
//! Presets: [`ChainSpec::dev`] (the default) and [`ChainSpec::seed`] (the seed's figures).
//! Anything else is a TOML file read by [`ChainSpec::from_toml_str`]; see
//! `docs/chain-spec.md` for its fields.

use serde::{Deserialize, Serialize};

use crate::block::{Block, tx_root};
use crate::hash::{BlockHash, Hash512};
use crate::header::{HEADER_VERSION, Header};
use crate::keys::{Address, Keypair};
use crate::pow::{DifficultyBits, RetargetRule, Target};
use crate::tx::{COINBASE_BYTES, Coinbase, MEMO_BYTES_MAX, Transaction};
use crate::units::{Amount, Height, Timestamp};

/// Block and transaction limits of a chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Most transactions in a block, coinbase included.
    pub block_txs_max: u32,
    /// Most bytes in a block: header plus the consensus encodings of its transactions.
    pub block_bytes_max: u32,
    /// Longest memo a transfer may carry, in bytes (at most 256).
    pub memo_bytes_max: u32,
    /// How far past the validating node's clock a block's time may be, in milliseconds.
    pub block_time_future_max_ms: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            block_txs_max: 4_000,
            block_bytes_max: 1 << 20,
            memo_bytes_max: 64,
            block_time_future_max_ms: 60_000,
        }
    }
}

/// Coins that exist at genesis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allocation {
    /// The funded account.
    pub address: Address,
    /// Its starting balance.
    pub balance: Amount,
}

/// The numbered dev accounts a spec funds, whose keys anyone can derive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevAccounts {
    /// Accounts `0..count` are funded.
    pub count: u64,
    /// Each one's starting balance.
    pub balance: Amount,
}

/// A network's rules and genesis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainSpec {
    /// The network's name.
    pub name: String,
    /// Genesis time, milliseconds since the Unix epoch.
    pub genesis_time_ms: u64,
    /// Difficulty of genesis, and of every block when there is no retarget rule.
    pub difficulty_bits: DifficultyBits,
    /// How the difficulty follows the block rate; `None` keeps it fixed (as in the seed).
    #[serde(default)]
    pub retarget: Option<RetargetRule>,
    /// New coins for each block's miner.
    pub block_reward: Amount,
    /// Smallest fee a transfer may pay.
    #[serde(default)]
    pub fee_min: Amount,
    /// Largest amount one transfer may move (the seed's `MAX_COINS`).
    pub amount_max: Amount,
    /// Whether transfers may only pay accounts that already exist (the seed's rule).
    #[serde(default)]
    pub require_known_recipient: bool,
    /// Numbered dev accounts funded at genesis.
    #[serde(default)]
    pub dev_accounts: Option<DevAccounts>,
    /// Other accounts funded at genesis.
    #[serde(default)]
    pub allocations: Vec<Allocation>,
    /// Block and transaction limits.
    #[serde(default)]
    pub limits: Limits,
}

/// Why a chain spec cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The TOML does not parse or names unknown fields.
    #[error("chain spec is not valid TOML for a powchain spec: {0}")]
    Toml(String),
    /// No coins exist at genesis.
    #[error("chain spec funds no account at genesis: add `dev_accounts` or `allocations`")]
    NoAllocations,
    /// Genesis coins overflow a u64.
    #[error(
        "chain spec's genesis allocations add up to more than {} coins",
        u64::MAX
    )]
    SupplyOverflow,
    /// An allocation of zero coins.
    #[error("allocation to {0} is zero coins")]
    ZeroAllocation(Address),
    /// The maximum transfer is zero.
    #[error("amount_max must be at least 1")]
    ZeroAmountMax,
    /// A limit is out of its range.
    #[error("limit {name} is {value}; it must be between {min} and {max}")]
    Limit {
        /// The limit's field name.
        name: &'static str,
        /// The value given.
        value: u64,
        /// Smallest allowed.
        min: u64,
        /// Largest allowed.
        max: u64,
    },
    /// The retarget rule is unusable.
    #[error("retarget rule: {0}")]
    Retarget(&'static str),
    /// The name is empty or too long.
    #[error("chain name must be 1 to 64 characters")]
    Name,
}

/// Names accepted by [`ChainSpec::preset`].
pub const PRESETS: [&str; 3] = ["dev", "seed", "load"];

/// Most dev accounts a spec may fund (each is derived when genesis is built).
pub const DEV_ACCOUNTS_MAX: u64 = 100_000;

impl ChainSpec {
    /// The default development network: ten funded dev accounts, a block reward, and a
    /// difficulty that retargets toward two-second blocks.
    pub fn dev() -> ChainSpec {
        ChainSpec {
            name: "dev".into(),
            // 2026-01-01T00:00:00Z.
            genesis_time_ms: 1_767_225_600_000,
            difficulty_bits: const { DifficultyBits::new_const(18) },
            retarget: Some(RetargetRule {
                block_interval_ms: 2_000,
                window_blocks: 20,
                clamp_factor: 4,
                easiest: const { DifficultyBits::new_const(8) },
                hardest: const { DifficultyBits::new_const(80) },
            }),
            block_reward: Amount(50),
            fee_min: Amount(1),
            amount_max: Amount(u64::MAX),
            require_known_recipient: false,
            dev_accounts: Some(DevAccounts {
                count: 10,
                balance: Amount(1_000_000),
            }),
            allocations: Vec::new(),
            limits: Limits::default(),
        }
    }

    /// The seed's figures: accounts 0..99 with 10 coins each, a fixed difficulty of 14 bits,
    /// no block reward, no fees, transfers of 1..=1000 coins between existing accounts.
    pub fn seed() -> ChainSpec {
        ChainSpec {
            name: "seed".into(),
            // 2021-01-31T00:00:00Z, the day the seed was published.
            genesis_time_ms: 1_612_051_200_000,
            difficulty_bits: const { DifficultyBits::new_const(14) },
            retarget: None,
            block_reward: Amount(0),
            fee_min: Amount(0),
            amount_max: Amount(1_000),
            require_known_recipient: true,
            dev_accounts: Some(DevAccounts {
                count: 100,
                balance: Amount(10),
            }),
            allocations: Vec::new(),
            limits: Limits::default(),
        }
    }

    /// The dev network for load: 10,000 funded dev accounts and blocks of up to 20,000
    /// transfers (3 MiB), so that neither senders (each may be 64 nonces ahead) nor block
    /// space is what limits a load test, but the node.
    pub fn load() -> ChainSpec {
        let mut spec = ChainSpec::dev();
        spec.name = "load".into();
        spec.dev_accounts = Some(DevAccounts {
            count: 10_000,
            balance: Amount(1_000_000),
        });
        spec.limits.block_txs_max = 20_000;
        spec.limits.block_bytes_max = 3 << 20;
        // Started where four busy nodes' miners find a block every two seconds or so, not
        // every half second: blocks that come faster than a loaded node checks and relays
        // them go stale, and their transfers are checked again by every node.
        spec.difficulty_bits = const { DifficultyBits::new_const(21) };
        spec
    }

    /// A preset by name (see [`PRESETS`]).
    pub fn preset(name: &str) -> Option<ChainSpec> {
        match name {
            "dev" => Some(ChainSpec::dev()),
            "seed" => Some(ChainSpec::seed()),
            "load" => Some(ChainSpec::load()),
            _ => None,
        }
    }

    /// Parses and checks a TOML spec.
    pub fn from_toml_str(text: &str) -> Result<ChainSpec, SpecError> {
        let spec: ChainSpec = toml::from_str(text).map_err(|e| SpecError::Toml(e.to_string()))?;
        spec.check()?;
        Ok(spec)
    }

    /// The spec as TOML, for `powchain spec` and as a starting point for custom specs.
    pub fn to_toml_string(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot print spec: {e}\n"))
    }

    /// Checks the spec's values against their ranges.
    pub fn check(&self) -> Result<(), SpecError> {
        if self.name.is_empty() || self.name.chars().count() > 64 {
            return Err(SpecError::Name);
        }
        if self.amount_max == Amount::ZERO {
            return Err(SpecError::ZeroAmountMax);
        }
        if let Some(dev) = &self.dev_accounts {
            check_limit("dev_accounts.count", dev.count, 0, DEV_ACCOUNTS_MAX)?;
        }
        let allocations = self.genesis_allocations();
        if allocations.is_empty() {
            return Err(SpecError::NoAllocations);
        }
        if let Some(zero) = allocations.iter().find(|a| a.balance == Amount::ZERO) {
            return Err(SpecError::ZeroAllocation(zero.address));
        }
        if Amount::checked_sum(allocations.iter().map(|a| a.balance)).is_none() {
            return Err(SpecError::SupplyOverflow);
        }
        let limits = &self.limits;
        check_limit("block_txs_max", limits.block_txs_max.into(), 1, 1_000_000)?;
        check_limit(
            "block_bytes_max",
            limits.block_bytes_max.into(),
            (crate::header::HEADER_BYTES + COINBASE_BYTES) as u64,
            64 << 20,
        )?;
        check_limit(
            "memo_bytes_max",
            limits.memo_bytes_max.into(),
            0,
            MEMO_BYTES_MAX as u64,
        )?;
        check_limit(
            "block_time_future_max_ms",
            limits.block_time_future_max_ms,
            0,
            86_400_000,
        )?;
        if let Some(rule) = &self.retarget {
            if rule.window_blocks < 2 {
                return Err(SpecError::Retarget("window_blocks must be at least 2"));
            }
            if rule.clamp_factor < 1 {
                return Err(SpecError::Retarget("clamp_factor must be at least 1"));
            }
            if rule.block_interval_ms == 0 {
                return Err(SpecError::Retarget("block_interval_ms must be at least 1"));
            }
            if rule.easiest > rule.hardest {
                return Err(SpecError::Retarget(
                    "easiest must not be harder than hardest",
                ));
            }
            if !(rule.easiest..=rule.hardest).contains(&self.difficulty_bits) {
                return Err(SpecError::Retarget(
                    "difficulty_bits must lie between easiest and hardest",
                ));
            }
        }
        Ok(())
    }

    /// The spec with a fixed difficulty of `difficulty` (the seed's setting) and no retarget.
    pub fn with_fixed_difficulty(mut self, difficulty: DifficultyBits) -> ChainSpec {
        self.difficulty_bits = difficulty;
        self.retarget = None;
        self
    }

    /// Every genesis allocation: dev accounts first (by index), then `allocations`.
    pub fn genesis_allocations(&self) -> Vec<Allocation> {
        let mut allocations = match self.dev_accounts {
            Some(dev) => Keypair::with_dev_addresses(dev.count, |addresses| {
                addresses
                    .iter()
                    .map(|&address| Allocation {
                        address,
                        balance: dev.balance,
                    })
                    .collect()
            }),
            None => Vec::new(),
        };
        allocations.extend(self.allocations.iter().cloned());
        allocations
    }

    /// The address of dev account `index`, if this spec funds it.
    pub fn dev_address(&self, index: u64) -> Option<Address> {
        let dev = self.dev_accounts?;
        (index < dev.count).then(|| Keypair::dev(index).address())
    }

    /// The index of a dev account's address, if it is one of this spec's.
    pub fn dev_index(&self, address: &Address) -> Option<u64> {
        let dev = self.dev_accounts?;
        Keypair::with_dev_addresses(dev.count, |addresses| {
            addresses
                .iter()
                .position(|known| known == address)
                .map(|index| index as u64)
        })
    }

    /// The target of genesis, and of every block when there is no retarget rule.
    pub fn genesis_target(&self) -> Target {
        self.difficulty_bits.target()
    }

    /// Digest of the rules, committed to by genesis (everything but the allocations, which
    /// genesis commits to as transactions).
    pub fn rules_digest(&self) -> Hash512 {
        let rules = (
            &self.name,
            self.genesis_time_ms,
            self.difficulty_bits,
            &self.retarget,
            self.block_reward,
            self.fee_min,
            self.amount_max,
            self.require_known_recipient,
            &self.limits,
        );
        // postcard of plain integers, strings and options is deterministic.
        let encoded = postcard::to_stdvec(&rules).unwrap_or_default();
        Hash512::digest_parts(&[b"powchain/rules/v1", &encoded])
    }

    /// The genesis block: one coinbase per allocation, no proof of work needed.
    pub fn genesis_block(&self) -> Block {
        let txs: Vec<Transaction> = self
            .genesis_allocations()
            .into_iter()
            .enumerate()
            .map(|(index, allocation)| {
                Transaction::Coinbase(Coinbase {
                    height: Height::GENESIS,
                    to: allocation.address,
                    amount: allocation.balance,
                    extra_nonce: index as u64,
                })
            })
            .collect();
        let header = Header {
            version: HEADER_VERSION,
            height: Height::GENESIS,
            prev_hash: BlockHash(self.rules_digest()),
            tx_root: tx_root(&txs),
            time: Timestamp(self.genesis_time_ms),
            target: self.genesis_target(),
            nonce: 0,
        };
        Block { header, txs }
    }

    /// The genesis hash: the network's id, signed into every transfer.
    pub fn genesis_hash(&self) -> BlockHash {
        self.genesis_block().header.hash()
    }
}

fn check_limit(name: &'static str, value: u64, min: u64, max: u64) -> Result<(), SpecError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(SpecError::Limit {
            name,
            value,
            min,
            max,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_load_preset_funds_ten_thousand_dev_accounts_each_findable() {
        let spec = ChainSpec::load();
        let allocations = spec.genesis_allocations();
        assert_eq!(allocations.len(), 10_000);
        let distinct: std::collections::BTreeSet<Address> =
            allocations.iter().map(|a| a.address).collect();
        assert_eq!(distinct.len(), 10_000);
        assert_eq!(allocations[9_999].address, Keypair::dev(9_999).address());
        assert_eq!(spec.dev_index(&Keypair::dev(7_777).address()), Some(7_777));
        assert_eq!(spec.dev_index(&Keypair::dev(10_000).address()), None);
        // The same accounts as the dev chain's first ten, under other rules.
        assert_eq!(
            ChainSpec::dev().genesis_allocations()[..],
            allocations[..10]
        );
    }

    #[test]
    fn a_spec_funds_at_most_a_bounded_number_of_dev_accounts() {
        let mut spec = ChainSpec::dev();
        spec.dev_accounts = Some(DevAccounts {
            count: u64::MAX,
            balance: Amount(1),
        });
        assert!(matches!(
            spec.check(),
            Err(SpecError::Limit {
                name: "dev_accounts.count",
                ..
            })
        ));
    }

    #[test]
    fn presets_are_valid_and_deterministic() {
        for name in PRESETS {
            let spec = ChainSpec::preset(name).unwrap();
            spec.check().unwrap();
            assert_eq!(
                spec.genesis_hash(),
                ChainSpec::preset(name).unwrap().genesis_hash()
            );
        }
        assert_ne!(
            ChainSpec::dev().genesis_hash(),
            ChainSpec::seed().genesis_hash()
        );
    }

    #[test]
    fn seed_preset_has_the_seed_figures() {
        let spec = ChainSpec::seed();
        let allocations = spec.genesis_allocations();
        assert_eq!(allocations.len(), 100);
        assert!(allocations.iter().all(|a| a.balance == Amount(10)));
        assert_eq!(spec.difficulty_bits.get(), 14);
        assert_eq!(spec.block_reward, Amount(0));
        assert_eq!(spec.dev_address(99), Some(Keypair::dev(99).address()));
        assert_eq!(spec.dev_address(100), None);
        assert_eq!(spec.dev_index(&Keypair::dev(42).address()), Some(42));
    }

    #[test]
    fn any_rule_change_changes_the_genesis_hash() {
        let base = ChainSpec::dev().genesis_hash();
        let mut spec = ChainSpec::dev();
        spec.block_reward = Amount(51);
        assert_ne!(spec.genesis_hash(), base);
        let mut spec = ChainSpec::dev();
        spec.limits.memo_bytes_max = 1;
        assert_ne!(spec.genesis_hash(), base);
        let mut spec = ChainSpec::dev();
        spec.allocations.push(Allocation {
            address: Keypair::dev(50).address(),
            balance: Amount(1),
        });
        assert_ne!(spec.genesis_hash(), base);
    }

    #[test]
    fn toml_round_trip() {
        for spec in [ChainSpec::dev(), ChainSpec::seed()] {
            let text = spec.to_toml_string();
            assert_eq!(ChainSpec::from_toml_str(&text).unwrap(), spec, "{text}");
        }
    }

    #[test]
    fn bad_toml_gives_clear_errors() {
        let minimal = "name = \"x\"\ngenesis_time_ms = 0\nblock_reward = 1\namount_max = 10\n";
        let cases = [
            (
                format!("{minimal}difficulty_bits = 0\n[dev_accounts]\ncount = 1\nbalance = 1\n"),
                "between 1 and 80",
            ),
            (
                format!("{minimal}difficulty_bits = 81\n[dev_accounts]\ncount = 1\nbalance = 1\n"),
                "between 1 and 80",
            ),
            (
                format!("{minimal}difficulty_bits = 8\n"),
                "funds no account",
            ),
            (
                format!("{minimal}difficulty_bits = 8\ncolour = 1\n"),
                "unknown field",
            ),
            (
                format!(
                    "{minimal}difficulty_bits = 8\n[[allocations]]\naddress = \"00\"\nbalance = 5\n"
                ),
                "64 hex digits",
            ),
            (
                format!(
                    "{minimal}difficulty_bits = 8\n[dev_accounts]\ncount = 1\nbalance = 1\n[limits]\nmemo_bytes_max = 1000\n"
                ),
                "memo_bytes_max",
            ),
            ("name = [".to_string(), "not valid TOML"),
        ];
        for (text, expected) in cases {
            let error = ChainSpec::from_toml_str(&text).unwrap_err().to_string();
            assert!(
                error.contains(expected),
                "{expected:?} not in {error:?} for\n{text}"
            );
        }
        let ok = format!("{minimal}difficulty_bits = 8\n[dev_accounts]\ncount = 3\nbalance = 7\n");
        let spec = ChainSpec::from_toml_str(&ok).unwrap();
        assert_eq!(spec.genesis_allocations().len(), 3);
    }
}

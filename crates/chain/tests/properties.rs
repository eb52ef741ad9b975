//! Property tests: the chain against a naive replay model, supply conservation, the mempool's
//! invariants, encodings that round-trip, and decoders that never panic.

// A test fails by panicking: unwrap, expect and panic are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};

use common::*;
use powchain_chain::block::{BlockContext, check_block};
use powchain_chain::header::HEADER_BYTES;
use powchain_chain::state::StateOverlay;
use powchain_chain::{
    Account, Address, Amount, Block, BlockHash, ChainSpec, Hash512, Header, Height, Keypair, Memo,
    Mempool, MempoolConfig, Removal, Target, Timestamp, Transaction, Transfer, TxId,
    UnsignedTransfer, Work, miner,
};
use proptest::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What the naive model knows of a block it built.
struct ModelBlock {
    block: Block,
    parent: Option<BlockHash>,
    valid: bool,
    work: Work,
    state: BTreeMap<Address, Account>,
}

/// Transfers that are valid on `state`, and now and then one that overspends.
fn random_transfers(
    rng: &mut ChaCha8Rng,
    spec: &ChainSpec,
    state: &BTreeMap<Address, Account>,
    count: usize,
) -> Vec<Transfer> {
    let mut nonces: HashMap<Address, u64> = state.iter().map(|(a, s)| (*a, s.nonce)).collect();
    let mut balances: HashMap<Address, u64> =
        state.iter().map(|(a, s)| (*a, s.balance.0)).collect();
    let mut out = Vec::new();
    for _ in 0..count {
        let from = rng.random_range(0..6u64);
        let mut to = rng.random_range(0..7u64);
        if to == from {
            to = 6;
        }
        let key = Keypair::dev(from);
        let balance = balances.get(&key.address()).copied().unwrap_or(0);
        let overspend = rng.random_ratio(1, 12);
        let amount = if overspend {
            balance + 1
        } else if balance < 3 {
            continue;
        } else {
            rng.random_range(1..balance / 2 + 1)
        };
        let fee = 1;
        let nonce = nonces.get(&key.address()).copied().unwrap_or(0);
        let tx = UnsignedTransfer {
            to: Keypair::dev(to).address(),
            amount: Amount(amount),
            fee: Amount(fee),
            nonce,
            memo: Memo::default(),
        }
        .sign(&key, &spec.genesis_hash());
        if !overspend {
            nonces.insert(key.address(), nonce + 1);
            balances.insert(key.address(), balance - amount - fee);
            *balances.entry(tx.to).or_default() += amount;
        }
        out.push(tx);
    }
    out
}

/// Builds a random block tree with a builder chain (which sees every block) and returns the
/// blocks in creation order with the model's verdict on each.
fn build_tree(seed: u64, blocks: usize) -> (ChainSpec, Vec<ModelBlock>) {
    // The difficulty stays between 1 and 10 bits, so any branch mines fast.
    let spec = retargeting_spec(10);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut builder = open(spec.clone());
    let now = late_now(&spec);
    let genesis = spec.genesis_block();
    let mut model = vec![ModelBlock {
        parent: None,
        valid: true,
        work: genesis.header.target.work(),
        state: replay(&spec, std::slice::from_ref(&genesis)),
        block: genesis,
    }];
    for _ in 0..blocks {
        // Prefer recent blocks so branches grow, but fork from anywhere.
        let valid: Vec<usize> = (0..model.len()).filter(|&i| model[i].valid).collect();
        let pick = if rng.random_ratio(2, 3) {
            valid[valid.len() - 1 - rng.random_range(0..valid.len().min(3))]
        } else {
            valid[rng.random_range(0..valid.len())]
        };
        let parent = &model[pick];
        let count = rng.random_range(0..4);
        let txs = random_transfers(&mut rng, &spec, &parent.state, count);
        let gap = rng.random_range(250..4_000);
        let time = Timestamp(parent.block.header.time.0 + gap);
        let block = block_on(
            &builder,
            parent.block.hash(),
            txs,
            time,
            rng.random_range(0..6),
        );
        let mut overlay = StateOverlay::new(&parent.state);
        let valid = overlay.connect_block(&block.txs, &spec).is_ok();
        let mut state = parent.state.clone();
        if valid {
            for (address, account) in overlay.into_changes() {
                match account {
                    Some(account) => state.insert(address, account),
                    None => state.remove(&address),
                };
            }
        }
        let work = Work(parent.work.0 + block.header.target.work().0);
        let parent_hash = parent.block.hash();
        // The builder must know every block to build on it, valid or not; it refuses the
        // invalid ones, which is fine: nothing is built on them.
        let _ = builder.import_block(block.clone(), now);
        model.push(ModelBlock {
            block,
            parent: Some(parent_hash),
            valid,
            work,
            state,
        });
    }
    (spec, model)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// After importing a random block tree in random order, the chain's state equals a
    /// replay of its best chain from genesis, its tip has the most work of any valid block,
    /// no invalid block is on the best chain, and supply is conserved.
    #[test]
    fn state_is_a_replay_of_the_best_chain(seed in any::<u64>(), blocks in 1usize..28) {
        let (spec, model) = build_tree(seed, blocks);
        let mut order: Vec<usize> = (1..model.len()).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
        for i in (1..order.len()).rev() {
            order.swap(i, rng.random_range(0..=i));
        }
        let mut chain = open(spec.clone());
        let now = late_now(&spec);
        for index in order {
            let _ = chain.import_block(model[index].block.clone(), now);
            prop_assert_eq!(total_supply(&chain), expected_supply(&chain));
        }
        let by_hash: HashMap<BlockHash, &ModelBlock> =
            model.iter().map(|m| (m.block.hash(), m)).collect();
        let best = best_blocks(&chain);
        for block in &best {
            prop_assert!(by_hash[&block.hash()].valid, "an invalid block is on the best chain");
        }
        prop_assert_eq!(chain.store().accounts(), &replay(&spec, &best));
        let most_work = model.iter().filter(|m| m.valid).map(|m| m.work).max().unwrap();
        prop_assert_eq!(chain.tip().chain_work, most_work);
        let tip_model = by_hash[&chain.tip().hash];
        prop_assert_eq!(chain.store().accounts(), &tip_model.state);
        prop_assert!(chain.orphans().is_empty(), "every parent arrived, so no orphan is left");
        // The tip's ancestry in the model is exactly the chain's best chain.
        let mut ancestry = vec![chain.tip().hash];
        while let Some(parent) = by_hash[ancestry.last().unwrap()].parent {
            ancestry.push(parent);
        }
        ancestry.reverse();
        prop_assert_eq!(ancestry, best.iter().map(Block::hash).collect::<Vec<_>>());
    }

    /// The mempool stays within its bounds, keeps each sender's nonces distinct and unspent,
    /// builds templates that are valid blocks, and accounts for every transfer it accepted:
    /// each is pending, or was reported removed with a reason.
    #[test]
    fn mempool_invariants(seed in any::<u64>(), steps in 1usize..60) {
        let spec = easy_spec();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut chain = open(spec.clone());
        let config = MempoolConfig {
            count_max: 12,
            bytes_max: 12 * 200,
            expiry_ms: 20_000,
            sender_nonces_ahead_max: 4,
        };
        let mut mempool = Mempool::new(config);
        let chain_id = chain.chain_id();
        let mut now = Timestamp(spec.genesis_time_ms + 1);
        let mut accepted: HashSet<TxId> = HashSet::new();
        let mut removed: HashMap<TxId, Removal> = HashMap::new();
        for _ in 0..steps {
            now = Timestamp(now.0 + rng.random_range(1..3_000));
            match rng.random_range(0..10) {
                0..=5 => {
                    let from = rng.random_range(0..6u64);
                    let to = (from + rng.random_range(1..6u64)) % 6;
                    let nonce = chain.account(&Keypair::dev(from).address()).unwrap()
                        .map_or(0, |a| a.nonce) + rng.random_range(0..3);
                    let amount = rng.random_range(1..400);
                    let fee = rng.random_range(1..20);
                    let tx = transfer(&spec, from, to, amount, fee, nonce);
                    if let Ok((id, evicted)) = mempool.add(tx, chain.store(), &spec, &chain_id, now) {
                        accepted.insert(id);
                        removed.extend(evicted);
                    }
                }
                6..=8 => {
                    let mut template = chain
                        .block_template(&mempool, Keypair::dev(0).address(), now, 0)
                        .unwrap();
                    miner::mine(&mut template.block);
                    let outcome = chain.import_block(template.block, now);
                    prop_assert!(outcome.is_ok(), "a template is a valid block: {:?}", outcome);
                    let change = outcome.unwrap().tip_change.expect("a template extends the tip");
                    removed.extend(mempool.on_tip_change(&change, chain.store(), &spec, now).unwrap());
                }
                _ => removed.extend(mempool.expire(now)),
            }
            prop_assert!(mempool.len() <= config.count_max);
            prop_assert!(mempool.bytes() <= config.bytes_max);
            let mut seen = HashSet::new();
            for (_, tx) in mempool.transfers() {
                prop_assert!(seen.insert((tx.from, tx.nonce)), "two pending transfers share a nonce");
                let confirmed = chain.account(&tx.from).unwrap().map_or(0, |a| a.nonce);
                prop_assert!(tx.nonce >= confirmed, "a pending nonce is already used");
            }
            for id in &accepted {
                prop_assert!(
                    mempool.contains(id) || removed.contains_key(id),
                    "transfer {:?} vanished without a reason", id
                );
            }
            prop_assert_eq!(total_supply(&chain), expected_supply(&chain));
        }
    }

    /// Header encoding round-trips, and every 172 bytes decode to some header.
    #[test]
    fn header_round_trip(bytes in proptest::collection::vec(any::<u8>(), HEADER_BYTES)) {
        let array: [u8; HEADER_BYTES] = bytes.try_into().unwrap();
        let header = Header::decode(&array);
        prop_assert_eq!(header.encode(), array);
        prop_assert_eq!(Header::decode(&header.encode()), header);
    }

    /// Transfers round-trip through postcard, and their consensus encoding has the length
    /// the byte limits count.
    #[test]
    fn transfer_round_trip(
        from in 0u64..50, to in 0u64..50, amount in any::<u64>(), fee in any::<u64>(),
        nonce in any::<u64>(), memo in proptest::collection::vec(any::<u8>(), 0..=256),
    ) {
        let tx = Transaction::Transfer(UnsignedTransfer {
            to: Keypair::dev(to).address(),
            amount: Amount(amount),
            fee: Amount(fee),
            nonce,
            memo: Memo::new(memo).unwrap(),
        }.sign(&Keypair::dev(from), &BlockHash(Hash512::digest(b"chain"))));
        let wire = postcard::to_stdvec(&tx).unwrap();
        prop_assert_eq!(postcard::from_bytes::<Transaction>(&wire).unwrap(), tx.clone());
        prop_assert_eq!(tx.encode().len(), tx.encoded_len());
    }

    /// Arbitrary bytes never make a decoder panic.
    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = postcard::from_bytes::<Block>(&bytes);
        let _ = postcard::from_bytes::<Transaction>(&bytes);
        let _ = postcard::from_bytes::<Header>(&bytes);
        let _ = postcard::from_bytes::<Transfer>(&bytes);
    }

    /// A real block with bytes flipped decodes to an error or to a block that validation
    /// rejects or accepts, without panicking.
    #[test]
    fn mutated_blocks_never_panic(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let spec = easy_spec();
        let chain = open(spec.clone());
        let genesis = chain.tip().hash;
        let txs = vec![transfer(&spec, 1, 2, 5, 1, 0)];
        let block = block_on(&chain, genesis, txs, Timestamp(spec.genesis_time_ms + 1), 0);
        let mut wire = postcard::to_stdvec(&block).unwrap();
        for (at, value) in flips {
            let len = wire.len();
            wire[at % len] ^= value | 1;
        }
        if let Ok(decoded) = postcard::from_bytes::<Block>(&wire) {
            let context = BlockContext {
                parent: genesis,
                height: Height(1),
                expected_target: Target(u128::MAX >> 4),
                median_time_past: Timestamp(spec.genesis_time_ms),
                now: late_now(&spec),
            };
            let _ = check_block(
                decoded,
                &spec,
                &chain.chain_id(),
                &context,
                &powchain_chain::sigcache::SigCache::default(),
            );
        }
    }
}

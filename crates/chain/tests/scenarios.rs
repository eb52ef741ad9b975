//! Whole-chain scenarios: the seed's screenshots, reorgs by work, and the mempool following
//! the tip.

// A test fails by panicking: unwrap, expect and panic are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use powchain_chain::chain::Placement;
use powchain_chain::{
    Amount, BlockError, ChainSpec, ImportError, Keypair, Mempool, MempoolConfig, MempoolError,
    Removal, Timestamp, TxError, miner,
};

/// Seed 000's session: `MakeTransaction 2 3 5`, `MakeTransaction 3 4 6`, `Mine`, then
/// `GetBalance` of 2, 3 and 4 reads 5, 9 and 16.
#[test]
fn seed_screenshot_scenario() {
    let spec = ChainSpec::seed();
    let mut chain = open(spec.clone());
    let mut mempool = Mempool::new(MempoolConfig::default());
    let now = late_now(&spec);
    let chain_id = chain.chain_id();
    for (from, to, amount) in [(2, 3, 5), (3, 4, 6)] {
        let tx = transfer(&spec, from, to, amount, 0, 0);
        mempool
            .add(tx, chain.store(), &spec, &chain_id, now)
            .expect("the seed's transfers are valid");
    }
    // Before mining, the pending balances already read as the seed shows them.
    let pending = |index: u64| {
        mempool
            .pending_balance(
                &Keypair::dev(index).address(),
                Amount(balance(&chain, index)),
            )
            .0
    };
    assert_eq!((pending(2), pending(3), pending(4)), (5, 9, 16));

    let miner_address = Keypair::dev(0).address();
    let mut template = chain
        .block_template(&mempool, miner_address, now, 0)
        .unwrap();
    assert_eq!(template.block.txs.len(), 3, "coinbase and both transfers");
    miner::mine(&mut template.block);
    assert!(template.block.hash().0.leading_zero_bits() >= 14);
    let outcome = chain.import_block(template.block, now).unwrap();
    assert_eq!(outcome.placement, Placement::BestChain);
    let change = outcome.tip_change.expect("the tip moved");
    let removed = mempool
        .on_tip_change(&change, chain.store(), &spec, now)
        .unwrap();
    assert!(removed.iter().all(|(_, why)| *why == Removal::Confirmed));
    assert!(mempool.is_empty());

    assert_eq!(
        (balance(&chain, 2), balance(&chain, 3), balance(&chain, 4)),
        (5, 9, 16)
    );
    // No reward on the seed chain: the supply is still 100 accounts x 10 coins.
    assert_eq!(total_supply(&chain), 1_000);
}

/// The seed's five rejections, each with its own error, plus ours.
#[test]
fn seed_rejections_are_distinct_errors() {
    let spec = ChainSpec::seed();
    let chain = open(spec.clone());
    let mut mempool = Mempool::new(MempoolConfig::default());
    let now = late_now(&spec);
    let chain_id = chain.chain_id();
    let mut add = |tx| mempool.add(tx, chain.store(), &spec, &chain_id, now);

    let to_stranger = powchain_chain::UnsignedTransfer {
        to: Keypair::dev(5000).address(),
        amount: Amount(1),
        fee: Amount(0),
        nonce: 0,
        memo: Default::default(),
    }
    .sign(&Keypair::dev(1), &chain_id);
    let from_stranger = powchain_chain::UnsignedTransfer {
        to: Keypair::dev(1).address(),
        amount: Amount(1),
        fee: Amount(0),
        nonce: 0,
        memo: Default::default(),
    }
    .sign(&Keypair::dev(5000), &chain_id);
    let mut forged = transfer(&spec, 1, 2, 1, 0, 0);
    forged.amount = Amount(2);

    type IsExpected = fn(&MempoolError) -> bool;
    let cases: Vec<(_, IsExpected)> = vec![
        (from_stranger, |e| {
            matches!(e, MempoolError::Tx(TxError::UnknownSender(_)))
        }),
        (to_stranger, |e| {
            matches!(e, MempoolError::Tx(TxError::UnknownRecipient(_)))
        }),
        (transfer(&spec, 1, 2, 11, 0, 0), |e| {
            matches!(e, MempoolError::Tx(TxError::InsufficientBalance { .. }))
        }),
        (transfer(&spec, 1, 2, 0, 0, 0), |e| {
            matches!(e, MempoolError::Tx(TxError::InvalidAmount { .. }))
        }),
        (transfer(&spec, 1, 2, 1001, 0, 0), |e| {
            matches!(e, MempoolError::Tx(TxError::InvalidAmount { .. }))
        }),
        (transfer(&spec, 1, 1, 1, 0, 0), |e| {
            matches!(e, MempoolError::Tx(TxError::SelfTransfer))
        }),
        (forged, |e| {
            matches!(e, MempoolError::Tx(TxError::BadSignature))
        }),
    ];
    for (tx, expected) in cases {
        let error = add(tx).unwrap_err();
        assert!(expected(&error), "unexpected error: {error}");
    }
    let ok = transfer(&spec, 1, 2, 1, 0, 0);
    add(ok.clone()).unwrap();
    assert!(matches!(
        add(ok),
        Err(MempoolError::Tx(TxError::Duplicate(_)))
    ));
    assert!(matches!(
        add(transfer(&spec, 1, 2, 2, 0, 0)),
        Err(MempoolError::NonceAlreadyPending { nonce: 0, .. })
    ));
}

/// Two branches from genesis: A has five blocks, B four, but B has more work because its
/// blocks came fast and the difficulty rose at height 4 while A's fell (in expected hashes,
/// A: 16 + 16 + 16 + 4 + 4 = 56, B: 16 + 16 + 16 + 64 = 112; B's first three make 48). B wins; a transfer only in A goes back to the mempool and is mined
/// on B.
#[test]
fn reorg_to_the_branch_with_more_work_even_when_shorter() {
    let spec = retargeting_spec(80);
    let mut chain = open(spec.clone());
    let mut mempool = Mempool::new(MempoolConfig::default());
    let now = late_now(&spec);
    let genesis = chain.tip().hash;
    let t0 = spec.genesis_time_ms;

    // Branch A: five slow blocks (4 s apart), the difficulty falls. It carries a transfer.
    let only_in_a = transfer(&spec, 1, 2, 100, 1, 0);
    let mut parent = genesis;
    let mut branch_a = Vec::new();
    for i in 1..=5u64 {
        let txs = if i == 1 {
            vec![only_in_a.clone()]
        } else {
            vec![]
        };
        let block = block_on(&chain, parent, txs, Timestamp(t0 + 4_000 * i), 3);
        parent = block.hash();
        let outcome = chain.import_block(block.clone(), now).unwrap();
        if let Some(change) = &outcome.tip_change {
            mempool
                .on_tip_change(change, chain.store(), &spec, now)
                .unwrap();
        }
        branch_a.push(block);
    }
    assert_eq!(chain.tip().height.0, 5);
    assert_eq!(balance(&chain, 2), 1_100);
    let work_a = chain.tip().chain_work;

    // Branch B: four fast blocks (1 ms apart), the difficulty rises fourfold at height 4.
    // Only the fourth gives B more work than A.
    let mut parent = genesis;
    let mut last = None;
    for i in 1..=4u64 {
        let block = block_on(&chain, parent, vec![], Timestamp(t0 + i), 4);
        parent = block.hash();
        let outcome = chain.import_block(block, now).unwrap();
        if i < 4 {
            assert_eq!(outcome.placement, Placement::SideBranch);
        }
        last = Some(outcome);
    }
    let outcome = last.unwrap();
    assert_eq!(outcome.placement, Placement::BestChain);
    let change = outcome.tip_change.expect("B overtook A");
    assert_eq!(chain.tip().height.0, 4, "the shorter branch won");
    assert!(chain.tip().chain_work > work_a);
    assert_eq!(change.disconnected.len(), 5);
    assert_eq!(change.connected.len(), 4);

    // The state is B's: the transfer in A is undone.
    assert_eq!(balance(&chain, 2), 1_000);
    assert_eq!(
        chain.store().accounts().clone(),
        replay(&spec, &best_blocks(&chain))
    );
    assert_eq!(total_supply(&chain), expected_supply(&chain));

    // The transfer that was only in A is back in the mempool...
    let removed = mempool
        .on_tip_change(&change, chain.store(), &spec, now)
        .unwrap();
    assert!(removed.is_empty(), "nothing dropped: {removed:?}");
    assert_eq!(mempool.len(), 1);
    assert_eq!(mempool.transfers()[0].1, &only_in_a);

    // ...and gets mined on the new tip.
    let mut template = chain
        .block_template(&mempool, Keypair::dev(5).address(), Timestamp(t0 + 10), 0)
        .unwrap();
    miner::mine(&mut template.block);
    let outcome = chain.import_block(template.block, now).unwrap();
    let change = outcome.tip_change.unwrap();
    let removed = mempool
        .on_tip_change(&change, chain.store(), &spec, now)
        .unwrap();
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].1, Removal::Confirmed);
    assert_eq!(balance(&chain, 2), 1_100);

    // Branch A's blocks are still known as a side branch.
    let again = chain.import_block(branch_a[3].clone(), now).unwrap();
    assert_eq!(again.placement, Placement::AlreadyKnown);
}

/// Equal work: the branch seen first keeps the tip.
#[test]
fn first_seen_wins_ties() {
    let spec = easy_spec();
    let mut chain = open(spec.clone());
    let now = late_now(&spec);
    let genesis = chain.tip().hash;
    let t = Timestamp(spec.genesis_time_ms + 1_000);
    let first = block_on(&chain, genesis, vec![], t, 1);
    let second = block_on(&chain, genesis, vec![], t, 2);
    chain.import_block(first.clone(), now).unwrap();
    let outcome = chain.import_block(second, now).unwrap();
    assert_eq!(outcome.placement, Placement::SideBranch);
    assert!(outcome.tip_change.is_none());
    assert_eq!(chain.tip().hash, first.hash());
}

/// With random tie-breaking a chain follows the equal-work tip its key ranks highest, in
/// whichever order the tips arrive; chains with different keys differ (a coin flip each).
#[test]
fn random_tie_breaking_ignores_the_order_of_arrival() {
    let spec = easy_spec();
    let now = late_now(&spec);
    let builder = open(spec.clone());
    let genesis = builder.tip().hash;
    let t = Timestamp(spec.genesis_time_ms + 1_000);
    let a = block_on(&builder, genesis, vec![], t, 1);
    let b = block_on(&builder, genesis, vec![], t, 2);
    let follows = |key: u64, order: [&powchain_chain::Block; 2]| {
        let config = powchain_chain::ChainConfig {
            tie_break: powchain_chain::TieBreak::Random { key },
            ..powchain_chain::ChainConfig::default()
        };
        let mut chain =
            powchain_chain::Chain::open(spec.clone(), powchain_chain::MemStore::new(), config)
                .unwrap();
        for block in order {
            chain.import_block(block.clone(), now).unwrap();
        }
        chain.tip().hash
    };
    let mut took_a = 0;
    for key in 0..64 {
        let tip = follows(key, [&a, &b]);
        assert_eq!(tip, follows(key, [&b, &a]), "key {key}: the order decided");
        took_a += usize::from(tip == a.hash());
    }
    // 64 fair coins: all on one side has odds of 2^-63.
    assert!(
        (1..64).contains(&took_a),
        "{took_a} of 64 keys chose the first block"
    );
}

/// Blocks arriving child first wait as orphans and connect when the parent comes.
#[test]
fn orphans_connect_when_their_parent_arrives() {
    let spec = easy_spec();
    let mut builder = open(spec.clone());
    let now = late_now(&spec);
    let t0 = spec.genesis_time_ms;
    let mut blocks = Vec::new();
    for i in 1..=3u64 {
        let block = block_on(&builder, builder.tip().hash, vec![], Timestamp(t0 + i), 0);
        builder.import_block(block.clone(), now).unwrap();
        blocks.push(block);
    }
    let mut chain = open(spec.clone());
    let third = chain.import_block(blocks[2].clone(), now).unwrap();
    assert_eq!(
        third.placement,
        Placement::Orphan {
            missing: blocks[1].hash()
        }
    );
    let second = chain.import_block(blocks[1].clone(), now).unwrap();
    assert_eq!(
        second.placement,
        Placement::Orphan {
            missing: blocks[0].hash()
        },
        "the root of the orphan chain is what to fetch"
    );
    let first = chain.import_block(blocks[0].clone(), now).unwrap();
    assert_eq!(first.placement, Placement::BestChain);
    assert_eq!(first.tip_change.unwrap().connected.len(), 3);
    assert_eq!(chain.tip().hash, blocks[2].hash());
    assert!(chain.orphans().is_empty());
}

/// A block whose transfer fails against state is refused, and so is anything built on it;
/// the tip stays.
#[test]
fn invalid_on_state_is_rejected_with_descendants() {
    let spec = easy_spec();
    let mut chain = open(spec.clone());
    let now = late_now(&spec);
    let genesis = chain.tip().hash;
    let t0 = spec.genesis_time_ms;
    // Dev account 1 has 1000 coins: spending 2000 passes every stateless check.
    let overspend = transfer(&spec, 1, 2, 2_000, 1, 0);
    let bad = block_on(&chain, genesis, vec![overspend], Timestamp(t0 + 1), 0);
    let error = chain.import_block(bad.clone(), now).unwrap_err();
    assert!(
        matches!(
            error,
            ImportError::Invalid {
                error: BlockError::BadTransaction {
                    index: 1,
                    error: TxError::InsufficientBalance { .. }
                },
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(chain.tip().hash, genesis);
    assert!(matches!(
        chain.import_block(bad.clone(), now),
        Err(ImportError::KnownInvalid(_))
    ));
    // A child of the invalid block cannot be built with the tree's context (its parent is
    // invalid), so forge one by hand from a sibling chain.
    let mut child = block_on(&chain, genesis, vec![], Timestamp(t0 + 2), 0);
    child.header.prev_hash = bad.hash();
    assert!(matches!(
        chain.import_block(child, now),
        Err(ImportError::InvalidAncestor { .. })
    ));
    assert_eq!(total_supply(&chain), expected_supply(&chain));
}

/// Context checks: bad proof of work, wrong target, time before the median, time too far
/// ahead of `now`, wrong coinbase amount.
#[test]
fn block_rules_each_have_their_error() {
    let spec = easy_spec();
    let mut chain = open(spec.clone());
    let now = late_now(&spec);
    let genesis = chain.tip().hash;
    let t0 = spec.genesis_time_ms;
    let good = block_on(&chain, genesis, vec![], Timestamp(t0 + 1), 0);

    let mut bad_pow = good.clone();
    while bad_pow.header.meets_own_target() {
        bad_pow.header.nonce += 1;
    }
    let mut wrong_target = good.clone();
    wrong_target.header.target = powchain_chain::Target(u128::MAX);
    miner::mine(&mut wrong_target);
    let old = block_on(&chain, genesis, vec![], Timestamp(t0), 0);
    let future = block_on(
        &chain,
        genesis,
        vec![],
        now.saturating_add_ms(spec.limits.block_time_future_max_ms + 1),
        0,
    );
    let mut rich = good.clone();
    if let powchain_chain::Transaction::Coinbase(c) = &mut rich.txs[0] {
        c.amount = Amount(c.amount.0 + 1);
    }
    rich.header.tx_root = powchain_chain::block::tx_root(&rich.txs);
    miner::mine(&mut rich);
    let mut bad_root = good.clone();
    bad_root.txs[0] = rich.txs[0].clone();
    miner::mine(&mut bad_root);

    let expect =
        |block, check: fn(&BlockError) -> bool, chain: &mut powchain_chain::Chain<_>| match chain
            .import_block(block, now)
        {
            Err(ImportError::Invalid { error, .. }) => assert!(check(&error), "{error}"),
            other => panic!("expected an invalid block, got {other:?}"),
        };
    expect(
        bad_pow,
        |e| matches!(e, BlockError::BadProofOfWork(_)),
        &mut chain,
    );
    expect(
        wrong_target,
        |e| matches!(e, BlockError::WrongTarget { .. }),
        &mut chain,
    );
    expect(
        old,
        |e| matches!(e, BlockError::TimeTooOld { .. }),
        &mut chain,
    );
    expect(
        future,
        |e| matches!(e, BlockError::TimeTooNew { .. }),
        &mut chain,
    );
    expect(
        rich,
        |e| matches!(e, BlockError::CoinbaseAmount { .. }),
        &mut chain,
    );
    expect(bad_root, |e| matches!(e, BlockError::BadTxRoot), &mut chain);
    assert_eq!(chain.tip().hash, genesis);
    chain.import_block(good, now).unwrap();
    assert_eq!(chain.tip().height.0, 1);
}

/// Reopening a store gives the same tip and state without replaying; another spec's store
/// is refused with both genesis hashes named.
#[test]
fn reopen_and_refuse_a_foreign_store() {
    let spec = easy_spec();
    let mut chain = open(spec.clone());
    let now = late_now(&spec);
    let t0 = spec.genesis_time_ms;
    for i in 1..=3u64 {
        let block = block_on(&chain, chain.tip().hash, vec![], Timestamp(t0 + i), 0);
        chain.import_block(block, now).unwrap();
    }
    let tip = chain.tip();
    let store = chain.store().clone();
    let reopened =
        powchain_chain::Chain::open(spec.clone(), store.clone(), Default::default()).unwrap();
    assert_eq!(reopened.tip(), tip);
    let error = match powchain_chain::Chain::open(ChainSpec::seed(), store, Default::default()) {
        Err(error) => error.to_string(),
        Ok(_) => panic!("a foreign store opened"),
    };
    assert!(error.contains(&spec.genesis_hash().short(16)), "{error}");
    assert!(
        error.contains(&ChainSpec::seed().genesis_hash().short(16)),
        "{error}"
    );
    // And what differs, in words.
    assert!(error.contains("the chain's name is"), "{error}");
}

/// A block found invalid is remembered by hash and refused at once; a block whose body does
/// not match its header is not, so nobody can censor a valid block by sending it first with
/// a bad body.
#[test]
fn invalid_hashes_are_remembered_but_bad_bodies_do_not_censor() {
    let spec = easy_spec();
    let mut chain = open(spec.clone());
    let now = late_now(&spec);
    let genesis = chain.tip().hash;
    let t0 = spec.genesis_time_ms;

    let mut forged = transfer(&spec, 1, 2, 5, 1, 0);
    forged.amount = Amount(6);
    let bad = block_on(&chain, genesis, vec![forged], Timestamp(t0 + 1), 0);
    assert!(matches!(
        chain.import_block(bad.clone(), now),
        Err(ImportError::Invalid {
            error: BlockError::BadTransaction {
                error: TxError::BadSignature,
                ..
            },
            ..
        })
    ));
    assert_eq!(
        chain.import_block(bad.clone(), now),
        Err(ImportError::KnownInvalid(bad.hash()))
    );

    let good = block_on(
        &chain,
        genesis,
        vec![transfer(&spec, 1, 2, 5, 1, 0)],
        Timestamp(t0 + 2),
        0,
    );
    let mut mangled = good.clone();
    mangled.txs.pop();
    assert!(matches!(
        chain.import_block(mangled, now),
        Err(ImportError::Invalid {
            error: BlockError::BadTxRoot,
            ..
        })
    ));
    let outcome = chain.import_block(good, now).unwrap();
    assert_eq!(outcome.placement, Placement::BestChain);
}

/// A valid block forking deeper than the side-branch bound is reported as pruned, and is
/// gone from the tree and the store.
#[test]
fn a_too_deep_side_block_is_reported_pruned() {
    let spec = easy_spec();
    let config = powchain_chain::ChainConfig {
        side_depth_max: 2,
        ..Default::default()
    };
    let mut chain =
        powchain_chain::Chain::open(spec.clone(), powchain_chain::MemStore::new(), config).unwrap();
    let now = late_now(&spec);
    let genesis = chain.tip().hash;
    let t0 = spec.genesis_time_ms;
    for i in 1..=4u64 {
        let block = block_on(&chain, chain.tip().hash, vec![], Timestamp(t0 + i), 0);
        chain.import_block(block, now).unwrap();
    }
    let deep = block_on(&chain, genesis, vec![], Timestamp(t0 + 1), 5);
    let outcome = chain.import_block(deep.clone(), now).unwrap();
    assert_eq!(outcome.placement, Placement::Pruned);
    assert!(chain.tree().get(&deep.hash()).is_none());
    assert!(chain.block(&deep.hash()).unwrap().is_none());
}

/// A signature cache belongs to whoever hands it out: a chain's pool that shares it fills
/// it, the chain then finds the block's signature there, and another chain, with a cache of
/// its own, checks the same block's signature itself (a benchmark's reference pass cannot
/// warm what it measures).
#[test]
fn a_signature_cache_is_its_owners_not_the_processes() {
    let spec = ChainSpec::seed();
    let mut chain = open(spec.clone());
    let mut fresh = open(spec.clone());
    let mempool_config = MempoolConfig::default();
    let mut mempool = Mempool::new(mempool_config).sharing_signatures(chain.sig_cache().clone());
    let now = late_now(&spec);
    let chain_id = chain.chain_id();
    mempool
        .add(
            transfer(&spec, 2, 3, 5, 0, 0),
            chain.store(),
            &spec,
            &chain_id,
            now,
        )
        .unwrap();
    assert_eq!(
        chain.sig_cache().len(),
        1,
        "the pool's check is the chain's"
    );
    let mut template = chain
        .block_template(&mempool, Keypair::dev(0).address(), now, 0)
        .unwrap();
    miner::mine(&mut template.block);
    chain.import_block(template.block.clone(), now).unwrap();
    assert_eq!(chain.sig_cache().len(), 1, "found there, not checked again");
    assert!(fresh.sig_cache().is_empty());
    fresh.import_block(template.block, now).unwrap();
    assert_eq!(
        fresh.sig_cache().len(),
        1,
        "checked by the other chain itself"
    );
    assert!(!fresh.sig_cache().is_shared_with(chain.sig_cache()));
}

//! A transfer as a peer or a user sends it, through the mempool's full check against the
//! chain's state. Admitted means findable, counted in the pool's size, and chosen by the next
//! block template, whose block the chain then accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use powchain_chain::{Mempool, MempoolConfig, Transfer};

fuzz_target!(|data: &[u8]| {
    let Ok(transfer) = postcard::from_bytes::<Transfer>(data) else {
        return;
    };
    let mut chain = powchain_fuzz::chain();
    let mut mempool = Mempool::new(MempoolConfig::default());
    let spec = chain.spec().clone();
    let chain_id = chain.chain_id();
    let now = powchain_fuzz::now();
    let Ok((id, _)) = mempool.add(transfer, chain.store(), &spec, &chain_id, now) else {
        assert!(mempool.is_empty());
        return;
    };
    assert!(mempool.get(&id).is_some());
    assert_eq!(mempool.len(), 1);
    let miner = powchain_chain::Keypair::dev(9).address();
    let mut template = chain
        .block_template(&mempool, miner, now, 0)
        .expect("a template")
        .block;
    assert!(
        template.txs.iter().any(|tx| tx.id() == id),
        "the template takes it"
    );
    // One leading zero bit: a few nonces find one.
    while !template.header.meets_own_target() {
        template.header.nonce += 1;
    }
    let outcome = chain
        .import_block(template, now)
        .expect("the template is valid");
    assert!(outcome.tip_change.is_some());
});

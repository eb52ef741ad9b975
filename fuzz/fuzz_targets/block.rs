//! A block as a peer sends it (its postcard encoding), through the chain's whole import: the
//! cheap checks, the orphan pool, full validation, fork choice and the state. A refused block
//! leaves the tip alone; an accepted one is stored exactly as given, and a second import of
//! it changes nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use powchain_chain::Block;

fuzz_target!(|data: &[u8]| {
    let Ok(block) = postcard::from_bytes::<Block>(data) else {
        return;
    };
    let hash = block.hash();
    let mut chain = powchain_fuzz::chain();
    let genesis = chain.tip().hash;
    let outcome = chain.import_block(block.clone(), powchain_fuzz::now());
    let tip = chain.tip();
    assert!(
        chain.tree().get(&tip.hash).is_some(),
        "the tip is in the tree"
    );
    match outcome {
        Err(_) => assert_eq!(tip.hash, genesis, "a refused block moved the tip"),
        Ok(_) if tip.hash == hash => {
            let stored = chain
                .block(&hash)
                .expect("the store reads")
                .expect("the tip is stored");
            assert_eq!(*stored, block, "stored as given");
            let again = chain.import_block(block, powchain_fuzz::now());
            assert!(
                again.is_ok_and(|o| o.tip_change.is_none()),
                "imported twice"
            );
            assert_eq!(chain.tip().hash, hash);
        }
        Ok(_) => assert_eq!(tip.hash, genesis, "only this block could move the tip"),
    }
});

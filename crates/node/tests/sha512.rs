//! Every SHA-512 backend against the `sha2` crate on random input, and the nonce search
//! against the chain's committed header vectors.

// A test fails by panicking: unwrap, expect and panic are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;

use powchain_chain::Header;
use powchain_node::sha512::mining::NonceSearch;
use powchain_node::sha512::{Backend, compress_blocks};
use proptest::prelude::*;

/// The chain crate's consensus vectors: the header bytes and hashes the network agrees on.
const VECTORS: &str = include_str!("../../chain/tests/vectors.txt");

fn vectors() -> HashMap<&'static str, &'static str> {
    VECTORS
        .lines()
        .filter_map(|line| line.split_once(" = "))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any number of random (state, block) pairs compress as `sha2` compresses them, on
    /// every backend this CPU has, including partial lane groups.
    #[test]
    fn backends_match_sha2(
        pairs in proptest::collection::vec(
            (any::<[u64; 8]>(), proptest::collection::vec(any::<u8>(), 128)),
            1..20,
        )
    ) {
        let states: Vec<[u64; 8]> = pairs.iter().map(|(state, _)| *state).collect();
        let blocks: Vec<[u8; 128]> = pairs
            .iter()
            .map(|(_, block)| block.as_slice().try_into().unwrap())
            .collect();
        let mut expected = states.clone();
        for (state, block) in expected.iter_mut().zip(&blocks) {
            sha2::block_api::compress512(state, &[*block]);
        }
        for backend in Backend::supported() {
            let mut got = states.clone();
            compress_blocks(backend, &mut got, &blocks);
            prop_assert_eq!(&got, &expected, "{}", backend);
        }
    }

    /// The nonce search's hash of a random header with a random nonce is the header's hash.
    #[test]
    fn search_hashes_headers_like_the_chain(bytes in proptest::collection::vec(any::<u8>(), 172)) {
        let header = Header::decode(&bytes.try_into().unwrap());
        let search = NonceSearch::new(&header);
        prop_assert_eq!(search.leading_u128(header.nonce), header.hash().0.leading_u128());
    }
}

#[test]
fn committed_header_vectors() {
    let vectors = vectors();
    for (bytes, hash) in [
        ("sample_header_bytes", "sample_header_hash"),
        ("dev_genesis_header_bytes", "dev_genesis_hash"),
    ] {
        let encoded: [u8; 172] = hex::decode(vectors[bytes]).unwrap().try_into().unwrap();
        let header = Header::decode(&encoded);
        let expected = u128::from_str_radix(&vectors[hash][..32], 16).unwrap();
        let search = NonceSearch::new(&header);
        assert_eq!(search.leading_u128(header.nonce), expected, "{bytes}");
        // With an easy target, every backend accepts exactly the nonces the scalar hash does.
        let mut easy = header;
        easy.target = powchain_chain::Target(u128::MAX >> 3);
        let search = NonceSearch::new(&easy);
        for backend in Backend::supported() {
            for nonce in header.nonce..header.nonce + 64 {
                let meets = search.leading_u128(nonce) <= easy.target.0;
                let found = search.search(backend, nonce, 1);
                assert_eq!(found.is_some(), meets, "{bytes}, nonce {nonce}, {backend}");
            }
        }
    }
}

//! Which inbound peer makes room when the inbound slots are full, as Bitcoin Core chooses.
//!
//! A newcomer is not simply refused: whoever fills the slots first would keep them, so one
//! host with many connections could keep every honest peer out. Instead the useful and the
//! diverse are protected, and the rest compete by network group:
//!
//! 1. protected: the quarter of the slots with the lowest ping, an eighth that most
//!    recently gave us a new block, an eighth that most recently gave us a new transfer;
//! 2. of the others, the half connected longest are protected too;
//! 3. of what is left, the network group with the most connections (the youngest member
//!    breaks ties) loses its youngest member.
//!
//! When everything is protected, nobody is evicted and the newcomer is refused.

use std::cmp::Reverse;

use powchain_chain::Timestamp;

use crate::peer::PeerId;

/// What eviction knows of one inbound peer.
#[derive(Clone, Debug)]
pub(crate) struct Candidate {
    pub peer: PeerId,
    pub group: String,
    pub connected_at: Timestamp,
    /// The last ping's round trip (`None`: none yet, counted as the slowest).
    pub rtt_ms: Option<u64>,
    /// When it last gave us a block we did not have.
    pub last_block_at: Option<Timestamp>,
    /// When it last gave us a transfer we did not have.
    pub last_transfer_at: Option<Timestamp>,
}

/// The peer to evict among `candidates` (every inbound peer but the newcomer) for slots of
/// `inbound_max`, or `None` when all are protected.
pub(crate) fn select(mut candidates: Vec<Candidate>, inbound_max: usize) -> Option<PeerId> {
    protect(&mut candidates, inbound_max / 4, |c| c.rtt_ms.map(Reverse));
    protect(&mut candidates, inbound_max / 8, |c| c.last_block_at);
    protect(&mut candidates, inbound_max / 8, |c| c.last_transfer_at);
    let longest = candidates.len() / 2;
    protect(&mut candidates, longest, |c| Some(Reverse(c.connected_at)));
    // The group with the most members loses its youngest.
    let mut groups: Vec<(&str, usize, Timestamp, PeerId)> = Vec::new();
    for candidate in &candidates {
        match groups.iter_mut().find(|g| g.0 == candidate.group) {
            Some(group) => {
                group.1 += 1;
                if (candidate.connected_at, candidate.peer) > (group.2, group.3) {
                    (group.2, group.3) = (candidate.connected_at, candidate.peer);
                }
            }
            None => groups.push((&candidate.group, 1, candidate.connected_at, candidate.peer)),
        }
    }
    groups
        .into_iter()
        .max_by_key(|&(_, members, youngest, peer)| (members, youngest, peer))
        .map(|(_, _, _, peer)| peer)
}

/// Removes from `candidates` the `count` with the greatest `key`, among those that have one
/// (a peer that never gave us a block is not protected for its blocks). Ties go to the
/// higher peer id, so the choice is the same on every run.
fn protect<K: Ord>(
    candidates: &mut Vec<Candidate>,
    count: usize,
    key: impl Fn(&Candidate) -> Option<K>,
) {
    candidates.sort_by(|a, b| key(a).cmp(&key(b)).then(a.peer.cmp(&b.peer)));
    for _ in 0..count {
        match candidates.last() {
            Some(last) if key(last).is_some() => {
                candidates.pop();
            }
            _ => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(peer: PeerId, group: &str, connected_at: u64) -> Candidate {
        Candidate {
            peer,
            group: group.into(),
            connected_at: Timestamp(connected_at),
            rtt_ms: Some(50),
            last_block_at: None,
            last_transfer_at: None,
        }
    }

    /// One host holding most of the slots loses one of them to a newcomer; the peers of
    /// other groups keep theirs.
    #[test]
    fn the_largest_group_loses_its_youngest() {
        let mut candidates: Vec<Candidate> = (1..=6)
            .map(|peer| candidate(peer, "198.51", peer * 10))
            .collect();
        candidates.push(candidate(7, "203.0", 70));
        candidates.push(candidate(8, "192.0", 80));
        assert_eq!(select(candidates, 8), Some(6));
    }

    #[test]
    fn the_fast_and_the_useful_are_protected() {
        let mut candidates: Vec<Candidate> = (1..=8)
            .map(|peer| {
                let mut c = candidate(peer, "198.51", peer * 10);
                c.rtt_ms = Some(50 + peer);
                c
            })
            .collect();
        // The two fastest (8 and 1), the last to give a block (7) and a transfer (6) are
        // kept; of 2 to 5, the two connected longest are; 5 is the youngest of the rest.
        candidates[7].rtt_ms = Some(1);
        candidates[0].rtt_ms = Some(2);
        candidates[6].last_block_at = Some(Timestamp(1_000));
        candidates[5].last_transfer_at = Some(Timestamp(1_000));
        assert_eq!(select(candidates, 8), Some(5));
    }

    #[test]
    fn nobody_is_evicted_when_everyone_is_protected() {
        assert_eq!(select(Vec::new(), 8), None);
        // Two peers, slots of 8: ping protects 2, so none is left.
        let two = vec![candidate(1, "198.51", 10), candidate(2, "198.51", 20)];
        assert_eq!(select(two, 8), None);
    }
}

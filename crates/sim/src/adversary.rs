//! Nodes that do not play by the rules: one per scenario, running the ordinary protocol
//! node with a strategy between it and its links ([`Adversary`]).
//!
//! - [`Liar`]: claims a tip of far more work than it has, in its hello and every pong, and
//!   answers every headers request with "no more". Honest nodes must refuse it (its headers
//!   fall short of its claim) and go on syncing from each other: with a liar present the
//!   `no-honest-ban` and agreement checks must still pass.
//! - [`Selfish`]: selfish mining (Eyal and Sirer, "Majority is not Enough", 2014).
//!
//! Selfish mining: Blocks it mines are withheld: its node builds on them, but announcements, headers,
//! blocks (whole or compact) and the tip it reports never reveal them. When the honest network finds a block,
//! the adversary publishes just enough to stay ahead:
//!
//! | lead after the honest block | action |
//! |---|---|
//! | behind | give up the private branch |
//! | 0 (a tie) | publish everything and race; if it then finds the next block, publish it at once |
//! | 1 | publish everything: its branch is longer and wins |
//! | 2 or more | publish up to the honest height, keep the rest |
//!
//! With enough hash power its share of the best chain exceeds its share of hash power,
//! which the report shows.

use powchain_chain::{BlockHash, Chain, Hash512, Header, Height, MemStore, Work};
use powchain_protocol::{Message, TipSummary};

use crate::scenario::AdversarySettings;

/// The adversary of a scenario.
#[derive(Clone, Debug)]
pub enum Adversary {
    Selfish(Selfish),
    Liar(Liar),
}

impl Adversary {
    /// The strategy a scenario names (checked when it was read).
    pub fn new(settings: &AdversarySettings) -> Adversary {
        match settings.strategy.as_str() {
            "liar" => Adversary::Liar(Liar {
                node: settings.node,
            }),
            _ => Adversary::Selfish(Selfish::new(settings.node)),
        }
    }

    /// The adversary's node.
    pub fn node(&self) -> usize {
        match self {
            Adversary::Selfish(selfish) => selfish.node(),
            Adversary::Liar(liar) => liar.node,
        }
    }

    /// The strategy's name, as scenarios write it.
    pub fn strategy(&self) -> &'static str {
        match self {
            Adversary::Selfish(_) => "selfish",
            Adversary::Liar(_) => "liar",
        }
    }

    /// Own blocks given up so far.
    pub fn abandoned(&self) -> usize {
        match self {
            Adversary::Selfish(selfish) => selfish.abandoned(),
            Adversary::Liar(_) => 0,
        }
    }

    /// Tie races the honest network settled, and how many of those on the adversary's
    /// block (see [`Races`]).
    pub fn races(&self) -> Races {
        match self {
            Adversary::Selfish(selfish) => selfish.races,
            Adversary::Liar(_) => Races::default(),
        }
    }

    /// The adversary mined `header`: a header to announce, if any.
    pub fn on_own_block(&mut self, header: Header) -> Option<Header> {
        match self {
            Adversary::Selfish(selfish) => selfish.on_own_block(header),
            Adversary::Liar(_) => None,
        }
    }

    /// The adversary saw the honest block `header`: a header to announce, if any.
    pub fn on_honest_block(&mut self, header: &Header) -> Option<Header> {
        match self {
            Adversary::Selfish(selfish) => selfish.on_honest_block(header),
            Adversary::Liar(_) => None,
        }
    }

    /// The run is ending: a header to announce, if any.
    pub fn release_all(&mut self) -> Option<Header> {
        match self {
            Adversary::Selfish(selfish) => selfish.release_all(),
            Adversary::Liar(_) => None,
        }
    }

    /// What the adversary's node sends, as the strategy changes it. `None`: send nothing.
    pub fn filter(&self, message: Message, chain: &Chain<MemStore>) -> Option<Message> {
        match self {
            Adversary::Selfish(selfish) => selfish.filter(message, chain),
            Adversary::Liar(_) => Some(Liar::filter(message)),
        }
    }
}

/// The liar (see the module docs). Its node mines and relays as any other; only what it
/// says of its tip, and its answers to headers requests, are lies.
#[derive(Clone, Debug)]
pub struct Liar {
    node: usize,
}

impl Liar {
    /// A tip nobody has, a thousand blocks above the real one, with nearly all the work
    /// there could be.
    fn claim(real: TipSummary) -> TipSummary {
        TipSummary {
            hash: BlockHash(Hash512([0x1a; 64])),
            height: Height(real.height.0.saturating_add(1_000)),
            work: Work(u128::MAX / 2),
        }
    }

    fn filter(message: Message) -> Message {
        match message {
            Message::Hello(mut hello) => {
                hello.tip = Liar::claim(hello.tip);
                Message::Hello(hello)
            }
            Message::Pong { nonce, tip } => Message::Pong {
                nonce,
                tip: Liar::claim(tip),
            },
            Message::Headers(_) => Message::Headers(Vec::new()),
            other => other,
        }
    }
}

/// The strategy's state.
#[derive(Clone, Debug)]
pub struct Selfish {
    node: usize,
    /// Mined and not yet published, lowest first.
    withheld: Vec<(BlockHash, Header)>,
    /// The highest honest block the adversary has seen.
    public_height: u64,
    /// A tie race is on: the next own block is published at once.
    racing: bool,
    /// The race's own block: an honest block on top of it settles the race our way.
    race_block: Option<BlockHash>,
    /// Private blocks given up.
    abandoned: usize,
    /// How honest blocks settled races.
    races: Races,
}

/// Tie races the honest network settled (the adversary published a block of the height an
/// honest one just reached, then an honest miner found the next): how many, and how many
/// on the adversary's block. Their ratio is Eyal and Sirer's gamma as achieved, the share
/// of honest hash power that mined on the adversary's side of a tie.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Races {
    /// Races an honest block settled.
    pub settled_by_honest: usize,
    /// Of those, settled on the adversary's block.
    pub honest_on_adversary: usize,
}

impl Races {
    /// `honest_on_adversary / settled_by_honest` (`None` before the first).
    pub fn gamma(&self) -> Option<f64> {
        (self.settled_by_honest > 0)
            .then(|| self.honest_on_adversary as f64 / self.settled_by_honest as f64)
    }
}

impl Selfish {
    /// The strategy for `node`.
    pub fn new(node: usize) -> Selfish {
        Selfish {
            node,
            withheld: Vec::new(),
            public_height: 0,
            racing: false,
            race_block: None,
            abandoned: 0,
            races: Races::default(),
        }
    }

    /// The adversary's node.
    pub fn node(&self) -> usize {
        self.node
    }

    /// Private blocks given up so far.
    pub fn abandoned(&self) -> usize {
        self.abandoned
    }

    /// Whether `hash` is still private.
    fn is_withheld(&self, hash: &BlockHash) -> bool {
        self.withheld.iter().any(|(h, _)| h == hash)
    }

    /// The adversary mined `header`. Returns a header to announce (its branch up to it is
    /// then public), or `None` to keep it.
    pub fn on_own_block(&mut self, header: Header) -> Option<Header> {
        self.withheld.push((header.hash(), header));
        if self.racing {
            // The adversary settled the race itself: no honest miner's choice to count.
            self.racing = false;
            self.race_block = None;
            return self.publish_up_to(u64::MAX);
        }
        None
    }

    /// The adversary's node saw the honest block `header`. Returns a header to announce.
    pub fn on_honest_block(&mut self, header: &Header) -> Option<Header> {
        let height = header.height.0;
        if let Some(race_block) = self.race_block.take() {
            if height == self.public_height + 1 {
                self.races.settled_by_honest += 1;
                if header.prev_hash == race_block {
                    self.races.honest_on_adversary += 1;
                }
            } else if height <= self.public_height {
                // The honest side of the tie again, from another peer: the race is still on.
                self.race_block = Some(race_block);
            }
            // Higher: the block that settled it went unseen; nothing to count.
        }
        if height <= self.public_height {
            return None;
        }
        self.public_height = height;
        let Some((_, last)) = self.withheld.last() else {
            self.racing = false;
            return None;
        };
        let private = last.height.0;
        self.racing = false;
        match private.cmp(&height) {
            std::cmp::Ordering::Less => {
                self.abandoned += self.withheld.len();
                self.withheld.clear();
                None
            }
            std::cmp::Ordering::Equal => {
                self.racing = true;
                self.race_block = self.withheld.last().map(|(hash, _)| *hash);
                self.publish_up_to(u64::MAX)
            }
            std::cmp::Ordering::Greater if private == height + 1 => self.publish_up_to(u64::MAX),
            std::cmp::Ordering::Greater => self.publish_up_to(height),
        }
    }

    /// Publishes everything (the run is ending).
    pub fn release_all(&mut self) -> Option<Header> {
        self.racing = false;
        self.race_block = None;
        self.publish_up_to(u64::MAX)
    }

    /// Makes the withheld blocks up to `height` public; returns the highest of them.
    fn publish_up_to(&mut self, height: u64) -> Option<Header> {
        let released = self
            .withheld
            .iter()
            .rev()
            .find(|(_, h)| h.height.0 <= height)
            .map(|(_, h)| *h);
        self.withheld.retain(|(_, h)| h.height.0 > height);
        released
    }

    /// What the adversary's node sends, with every trace of withheld blocks removed. `None`:
    /// send nothing.
    pub fn filter(&self, message: Message, chain: &Chain<MemStore>) -> Option<Message> {
        if self.withheld.is_empty() {
            return Some(message);
        }
        match message {
            Message::Announce { header } if self.is_withheld(&header.hash()) => None,
            Message::Headers(mut headers) => {
                if let Some(cut) = headers.iter().position(|h| self.is_withheld(&h.hash())) {
                    headers.truncate(cut);
                }
                Some(Message::Headers(headers))
            }
            Message::Blocks(mut blocks) => {
                blocks.retain(|b| !self.is_withheld(&b.hash()));
                Some(Message::Blocks(blocks))
            }
            // A withheld block asked for compact: the node "does not have it".
            Message::CompactBlock(compact) if self.is_withheld(&compact.header.hash()) => {
                Some(Message::NotFound(vec![compact.header.hash()]))
            }
            Message::BlockTxn { block, .. } if self.is_withheld(&block) => None,
            Message::Pong { nonce, tip } => Some(Message::Pong {
                nonce,
                tip: self.public_tip(chain).unwrap_or(tip),
            }),
            Message::Hello(mut hello) => {
                hello.tip = self.public_tip(chain).unwrap_or(hello.tip);
                Some(Message::Hello(hello))
            }
            other => Some(other),
        }
    }

    /// The tip the adversary admits to: the last public block under its private branch.
    fn public_tip(&self, chain: &Chain<MemStore>) -> Option<TipSummary> {
        let (_, first) = self.withheld.first()?;
        let hash = first.prev_hash;
        let entry = chain.tree().get(&hash)?;
        Some(TipSummary {
            hash,
            height: entry.header.height,
            work: entry.chain_work,
        })
    }
}

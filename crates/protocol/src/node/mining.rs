//! Mining control: whether the miner works, and when it gets a new template.
//!
//! Automine mines continuously, empty blocks included (seed 003); `Mine` mines the pending
//! transfers once (seed 000) and stops; `MineBlocks` mines a number of blocks now, empty
//! ones too if asked (what developer chains' "generate N" does), and stops. A new tip gets a template at once; new transfers get
//! one at most every `template_refresh_ms`, since building a template hashes every transfer
//! it holds, and doing that for every arriving transfer made a busy mempool cost quadratic
//! time (the simulator found it).
//!
//! - **The miner is never left on an old tip**: every tip change asks for new work.
//! - **`Mine` stops once its block is in, or when there is nothing left to mine;
//!   `MineBlocks` once its blocks are in (or, without `allow_empty`, when nothing is left).**

use powchain_chain::Timestamp;

use crate::node::config::NodeConfig;

/// What the miner should do next, as [`MiningControl::next_work`] decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NextWork {
    /// Nothing changes (not mining).
    Keep,
    /// Stop mining.
    Stop,
    /// Mine a fresh template.
    Template,
}

/// The mining switches and the template clock.
#[derive(Debug)]
pub(crate) struct MiningControl {
    automine: bool,
    /// Blocks still to mine on request (`Mine`, `MineBlocks`).
    to_mine: u64,
    /// Whether those may be empty.
    allow_empty: bool,
    /// When the miner was last given a template, and whether transfers arrived since.
    last_template: Timestamp,
    template_stale: bool,
    template_refresh_ms: u64,
}

impl MiningControl {
    pub fn new(config: &NodeConfig) -> MiningControl {
        MiningControl {
            automine: false,
            to_mine: 0,
            allow_empty: false,
            last_template: Timestamp(0),
            template_stale: false,
            template_refresh_ms: config.template_refresh_ms,
        }
    }

    /// Whether automine is on.
    pub fn is_automining(&self) -> bool {
        self.automine
    }

    fn is_mining(&self) -> bool {
        self.automine || self.to_mine > 0
    }

    /// Turns automine on or off: on, the miner needs a template; off, it stops unless a
    /// `Mine` is still waiting for its block.
    pub fn set_automine(&mut self, on: bool) -> NextWork {
        self.automine = on;
        match (on, self.to_mine > 0) {
            (true, _) => NextWork::Template,
            (false, false) => NextWork::Stop,
            (false, true) => NextWork::Keep,
        }
    }

    /// `MineBlocks`: mine `blocks` more, empty ones too with `allow_empty`.
    pub fn mine_blocks(&mut self, blocks: u64, allow_empty: bool) {
        self.to_mine = self.to_mine.saturating_add(blocks);
        self.allow_empty = allow_empty;
    }

    /// Blocks still to mine on request.
    #[cfg(test)]
    pub fn blocks_to_mine(&self) -> u64 {
        self.to_mine
    }

    /// The tip moved or the work must be rebuilt at `now`: what the miner does next.
    pub fn next_work(&mut self, now: Timestamp, mempool_empty: bool) -> NextWork {
        self.template_stale = false;
        if !self.is_mining() {
            return NextWork::Keep;
        }
        self.last_template = now;
        if self.to_mine > 0 && !self.automine && mempool_empty && !self.allow_empty {
            self.to_mine = 0;
            return NextWork::Stop;
        }
        NextWork::Template
    }

    /// New transfers arrived: whether to rebuild the template now (else it is marked stale,
    /// for [`MiningControl::refresh_due`]).
    pub fn transfers_arrived(&mut self, now: Timestamp) -> bool {
        if !self.is_mining() {
            return false;
        }
        if now.ms_since(self.last_template) >= self.template_refresh_ms {
            return true;
        }
        self.template_stale = true;
        false
    }

    /// Whether a stale template is old enough to be rebuilt at `now`.
    pub fn refresh_due(&self, now: Timestamp) -> bool {
        self.template_stale && now.ms_since(self.last_template) >= self.template_refresh_ms
    }

    /// When a stale template is rebuilt, if one is.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.template_stale.then(|| {
            self.last_template
                .saturating_add_ms(self.template_refresh_ms)
        })
    }

    /// A block of ours was accepted: one fewer to mine on request; when none is left the
    /// miner stops, unless automine keeps it going.
    pub fn block_found(&mut self) -> NextWork {
        if self.to_mine > 0 && !self.automine {
            self.to_mine -= 1;
            if self.to_mine == 0 {
                return NextWork::Stop;
            }
        }
        NextWork::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control() -> MiningControl {
        let mut config = NodeConfig::new(1);
        config.template_refresh_ms = 100;
        MiningControl::new(&config)
    }

    #[test]
    fn nothing_happens_while_not_mining() {
        let mut control = control();
        assert_eq!(control.next_work(Timestamp(0), false), NextWork::Keep);
        assert!(!control.transfers_arrived(Timestamp(500)));
        assert!(!control.refresh_due(Timestamp(1_000)));
    }

    #[test]
    fn new_transfers_refresh_the_template_at_most_every_interval() {
        let mut control = control();
        assert_eq!(control.set_automine(true), NextWork::Template);
        assert_eq!(control.next_work(Timestamp(0), true), NextWork::Template);
        assert!(!control.transfers_arrived(Timestamp(50)));
        assert!(!control.refresh_due(Timestamp(99)));
        assert_eq!(control.next_deadline(), Some(Timestamp(100)));
        assert!(control.refresh_due(Timestamp(100)));
        assert!(control.transfers_arrived(Timestamp(150)));
    }

    #[test]
    fn mine_once_stops_after_its_block_or_when_nothing_is_left() {
        let mut control = control();
        control.mine_blocks(1, false);
        assert_eq!(control.next_work(Timestamp(0), false), NextWork::Template);
        assert_eq!(control.block_found(), NextWork::Stop);
        assert_eq!(control.next_work(Timestamp(1), false), NextWork::Keep);
        control.mine_blocks(1, false);
        assert_eq!(control.next_work(Timestamp(2), true), NextWork::Stop);
        // Automine off while a `Mine` waits leaves the miner on it.
        control.mine_blocks(1, false);
        assert_eq!(control.set_automine(false), NextWork::Keep);
    }

    #[test]
    fn mine_blocks_mines_that_many_empty_ones_too_when_asked() {
        let mut control = control();
        control.mine_blocks(3, true);
        for left in [2, 1] {
            assert_eq!(control.next_work(Timestamp(0), true), NextWork::Template);
            assert_eq!(control.block_found(), NextWork::Keep);
            assert_eq!(control.blocks_to_mine(), left);
        }
        assert_eq!(control.next_work(Timestamp(0), true), NextWork::Template);
        assert_eq!(control.block_found(), NextWork::Stop);
        assert_eq!(control.next_work(Timestamp(1), true), NextWork::Keep);
        // Without allow_empty, an empty mempool ends it as `Mine` does.
        control.mine_blocks(5, false);
        assert_eq!(control.next_work(Timestamp(2), true), NextWork::Stop);
        assert_eq!(control.blocks_to_mine(), 0);
    }
}

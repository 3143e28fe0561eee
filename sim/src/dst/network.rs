//! The virtual sync links between the two nodes.
//!
//! Each link has two directions with their own parameters (delay, jitter, long tail, loss,
//! duplication, bit flips, in-order or not) and their own cut state, so that symmetric and
//! asymmetric partitions and "one link cut while the other lives" are all the same thing:
//! a set of cut directions. Cuts nest (two overlapping faults that cut the same direction
//! both have to end before it carries traffic again). A datagram is lost when its
//! direction is cut when it is sent or when it would arrive: a pulled cable loses what was
//! on it.

use super::clock::{Nanos, NANOS_PER_US};
use super::options::{LinkParams, OutputPathParams};
use std::collections::BTreeMap;
use twinloop::Rng;

/// Datagrams in flight per link direction before the simulated switch drops new ones.
pub const IN_FLIGHT_MAX: u32 = 8192;

/// One datagram the network will deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// When it arrives (true time).
    pub at: Nanos,
    /// The bytes, possibly with a flipped bit.
    pub bytes: Vec<u8>,
}

/// What happened to datagrams, for the statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetworkStats {
    /// Datagrams handed to the network.
    pub sent: u64,
    /// Dropped by random loss (baseline or burst).
    pub lost: u64,
    /// Dropped because their direction was cut.
    pub cut: u64,
    /// Delivered twice.
    pub duplicated: u64,
    /// Delivered with a flipped bit.
    pub flipped: u64,
    /// Dropped because too many were in flight.
    pub overflow: u64,
}

/// The links between node 0 and node 1.
#[derive(Debug)]
pub struct Network {
    params: Vec<[LinkParams; 2]>,
    /// Active cuts per direction; a direction carries traffic only at depth 0.
    cut_depth: Vec<[u32; 2]>,
    /// Active loss bursts: id → (links they cover, loss per million).
    bursts: BTreeMap<u64, (u32, u32)>,
    /// The latest arrival scheduled per direction, to keep FIFO links in order.
    last_arrival: Vec<[Nanos; 2]>,
    in_flight: Vec<[u32; 2]>,
    rng: Rng,
    /// Counters.
    pub stats: NetworkStats,
}

impl Network {
    /// Links with these parameters, all up.
    pub fn new(params: Vec<[LinkParams; 2]>, rng: Rng) -> Self {
        let n = params.len();
        Network {
            params,
            cut_depth: vec![[0; 2]; n],
            bursts: BTreeMap::new(),
            last_arrival: vec![[0; 2]; n],
            in_flight: vec![[0; 2]; n],
            rng,
            stats: NetworkStats::default(),
        }
    }

    /// Number of links.
    pub fn links(&self) -> usize {
        self.params.len()
    }

    /// True when direction `from → 1 - from` of `link` carries nothing.
    pub fn is_cut(&self, link: usize, from: usize) -> bool {
        self.cut_depth[link][from] > 0
    }

    /// True when every direction of every link carries traffic.
    pub fn all_up(&self) -> bool {
        self.cut_depth.iter().all(|d| d[0] == 0 && d[1] == 0)
    }

    /// True when no datagram can be lost or corrupted right now: no cut, no loss, no flips.
    pub fn is_lossless(&self) -> bool {
        self.all_up() && self.bursts.is_empty() && self.params.iter().all(|p| p[0].is_lossless() && p[1].is_lossless())
    }

    /// Cuts (`cut = true`) or restores one direction of one link. Cuts nest.
    pub fn set_cut(&mut self, link: usize, from: usize, cut: bool) {
        let depth = &mut self.cut_depth[link][from];
        if cut {
            *depth += 1;
        } else {
            assert!(*depth > 0, "link {link} direction {from} restored more often than cut");
            *depth -= 1;
        }
    }

    /// Starts a loss burst `id` on the links in `link_mask` (bit per link).
    pub fn burst_begin(&mut self, id: u64, link_mask: u32, loss_ppm: u32) {
        self.bursts.insert(id, (link_mask, loss_ppm));
    }

    /// Ends loss burst `id`.
    pub fn burst_end(&mut self, id: u64) {
        self.bursts.remove(&id);
    }

    /// Heals everything for the liveness phase: no cuts, no bursts, and every baseline
    /// impairment (loss, duplication, flips) removed. Delays stay: a healed network is
    /// still a network.
    pub fn heal(&mut self) {
        for depth in &mut self.cut_depth {
            *depth = [0; 2];
        }
        self.bursts.clear();
        for pair in &mut self.params {
            for p in pair.iter_mut() {
                *p = LinkParams {
                    loss_ppm: 0,
                    dup_ppm: 0,
                    flip_ppm: 0,
                    ..*p
                };
            }
        }
    }

    fn loss_ppm(&self, link: usize, from: usize) -> u32 {
        let burst = self
            .bursts
            .values()
            .filter(|(mask, _)| mask & (1 << link) != 0)
            .map(|(_, ppm)| *ppm)
            .max()
            .unwrap_or(0);
        self.params[link][from].loss_ppm.max(burst)
    }

    /// Sends `bytes` from node `from` on `link`; pushes 0, 1 or 2 deliveries to `out`.
    pub fn send(&mut self, now: Nanos, from: usize, link: usize, bytes: &[u8], out: &mut Vec<Delivery>) {
        self.stats.sent += 1;
        if self.is_cut(link, from) {
            self.stats.cut += 1;
            return;
        }
        let loss_ppm = self.loss_ppm(link, from);
        if loss_ppm > 0 && self.rng.chance(u64::from(loss_ppm), 1_000_000) {
            self.stats.lost += 1;
            return;
        }
        let p = self.params[link][from];
        let copies = if p.dup_ppm > 0 && self.rng.chance(u64::from(p.dup_ppm), 1_000_000) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            if self.in_flight[link][from] >= IN_FLIGHT_MAX {
                self.stats.overflow += 1;
                continue;
            }
            let mut delay_us = p.delay_us_min + self.rng.below(p.delay_us_jitter + 1);
            if p.tail_ppm > 0 && self.rng.chance(u64::from(p.tail_ppm), 1_000_000) {
                delay_us += self.rng.below(8 * p.delay_us_jitter + 1);
            }
            let mut at = now + delay_us * NANOS_PER_US;
            if p.fifo {
                at = at.max(self.last_arrival[link][from]);
            }
            self.last_arrival[link][from] = self.last_arrival[link][from].max(at);
            let mut copy = bytes.to_vec();
            if p.flip_ppm > 0 && !copy.is_empty() && self.rng.chance(u64::from(p.flip_ppm), 1_000_000) {
                self.stats.flipped += 1;
                let bit = self.rng.below(copy.len() as u64 * 8);
                copy[(bit / 8) as usize] ^= 1 << (bit % 8);
            }
            self.in_flight[link][from] += 1;
            out.push(Delivery { at, bytes: copy });
        }
    }

    /// A datagram sent by `from` on `link` reaches its end: returns whether it is
    /// delivered (false when the direction was cut meanwhile).
    pub fn arrive(&mut self, link: usize, from: usize) -> bool {
        self.in_flight[link][from] = self.in_flight[link][from].saturating_sub(1);
        if self.is_cut(link, from) {
            self.stats.cut += 1;
            return false;
        }
        true
    }
}

/// What happened on an output path, for the statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathStats {
    /// Datagrams handed to the path.
    pub sent: u64,
    /// Dropped by random loss.
    pub lost: u64,
    /// Dropped because the path was cut when sent or on arrival (an outage).
    pub cut: u64,
    /// Delivered twice.
    pub duplicated: u64,
    /// Dropped because too many were in flight.
    pub overflow: u64,
}

/// One direction of the plant network between the nodes and the sink (issue 22): the
/// outputs' way (node → sink) or the acknowledgements' (sink → node), shared by both
/// nodes (one switch). Loss, duplication, delay with jitter (reordering unless FIFO) and
/// outages that nest and heal; a datagram is lost when the path is cut when it is sent
/// or when it would arrive. It carries no bytes: the caller keeps what it sent and
/// schedules it at the arrival times this returns.
#[derive(Debug)]
pub struct OutputPath {
    params: OutputPathParams,
    cut_depth: u32,
    last_arrival: Nanos,
    in_flight: u32,
    rng: Rng,
    /// Counters.
    pub stats: PathStats,
}

impl OutputPath {
    /// A path with these parameters, not cut.
    pub fn new(params: OutputPathParams, rng: Rng) -> Self {
        OutputPath {
            params,
            cut_depth: 0,
            last_arrival: 0,
            in_flight: 0,
            rng,
            stats: PathStats::default(),
        }
    }

    /// True when every datagram is handed over at once, whole (no draw is made).
    pub fn is_perfect(&self) -> bool {
        self.params.is_perfect()
    }

    /// True while an outage cuts the path.
    pub fn is_cut(&self) -> bool {
        self.cut_depth > 0
    }

    /// Begins (`cut = true`) or ends an outage. Outages nest.
    pub fn set_cut(&mut self, cut: bool) {
        if cut {
            self.cut_depth += 1;
        } else {
            self.cut_depth = self.cut_depth.saturating_sub(1);
        }
    }

    /// Heals the path for the liveness phase: no outage, no loss, no duplication; the
    /// delays (and reordering) stay.
    pub fn heal(&mut self) {
        self.cut_depth = 0;
        self.params.loss_ppm = 0;
        self.params.dup_ppm = 0;
    }

    /// Sends one datagram at `now`: pushes 0, 1 or 2 arrival times to `out`.
    pub fn send(&mut self, now: Nanos, out: &mut Vec<Nanos>) {
        self.stats.sent += 1;
        if self.is_cut() {
            self.stats.cut += 1;
            return;
        }
        let p = self.params;
        if p.loss_ppm > 0 && self.rng.chance(u64::from(p.loss_ppm), 1_000_000) {
            self.stats.lost += 1;
            return;
        }
        let copies = if p.dup_ppm > 0 && self.rng.chance(u64::from(p.dup_ppm), 1_000_000) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            if self.in_flight >= IN_FLIGHT_MAX {
                self.stats.overflow += 1;
                continue;
            }
            let delay_us = p.delay_us_min + self.rng.below(p.delay_us_jitter + 1);
            let mut at = now + delay_us * NANOS_PER_US;
            if p.fifo {
                at = at.max(self.last_arrival);
            }
            self.last_arrival = self.last_arrival.max(at);
            self.in_flight += 1;
            out.push(at);
        }
    }

    /// A datagram reaches its end: returns whether it is delivered (false when an outage
    /// began meanwhile).
    pub fn arrive(&mut self) -> bool {
        self.in_flight = self.in_flight.saturating_sub(1);
        if self.is_cut() {
            self.stats.cut += 1;
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(params: LinkParams) -> Network {
        Network::new(vec![[params, params], [params, params]], Rng::new(1))
    }

    #[test]
    fn network_clean_link_delivers_once_in_order_within_delay() {
        let mut n = net(LinkParams::clean(100, 50));
        let mut out = Vec::new();
        for i in 0..100u64 {
            n.send(i * 10, 0, 0, &[i as u8], &mut out);
        }
        assert_eq!(out.len(), 100);
        for pair in out.windows(2) {
            assert!(pair[0].at <= pair[1].at, "FIFO link reordered");
        }
        for (i, d) in out.iter().enumerate() {
            assert_eq!(d.bytes, vec![i as u8]);
            let sent = i as u64 * 10;
            assert!(d.at >= sent + 100_000);
        }
    }

    #[test]
    fn network_cut_direction_drops_only_that_direction() {
        let mut n = net(LinkParams::clean(10, 0));
        n.set_cut(0, 0, true);
        let mut out = Vec::new();
        n.send(0, 0, 0, b"x", &mut out);
        assert!(out.is_empty());
        n.send(0, 1, 0, b"x", &mut out);
        n.send(0, 0, 1, b"x", &mut out);
        assert_eq!(out.len(), 2, "the other direction and the other link still carry");
        assert!(!n.all_up());
        n.set_cut(0, 0, false);
        assert!(n.all_up());
    }

    #[test]
    fn network_cut_while_in_flight_loses_the_datagram() {
        let mut n = net(LinkParams::clean(10, 0));
        let mut out = Vec::new();
        n.send(0, 0, 0, b"x", &mut out);
        n.set_cut(0, 0, true);
        assert!(!n.arrive(0, 0));
        assert_eq!(n.stats.cut, 1);
    }

    #[test]
    fn network_cuts_nest() {
        let mut n = net(LinkParams::clean(10, 0));
        n.set_cut(1, 1, true);
        n.set_cut(1, 1, true);
        n.set_cut(1, 1, false);
        assert!(n.is_cut(1, 1));
        n.set_cut(1, 1, false);
        assert!(!n.is_cut(1, 1));
    }

    #[test]
    fn network_impairments_happen_at_their_rates() {
        let p = LinkParams {
            loss_ppm: 100_000,
            dup_ppm: 100_000,
            flip_ppm: 100_000,
            fifo: false,
            ..LinkParams::clean(10, 1000)
        };
        let mut n = net(p);
        let mut out = Vec::new();
        for i in 0..10_000u64 {
            n.send(i, 0, 0, &[0u8; 8], &mut out);
        }
        let s = n.stats;
        for (name, count) in [("lost", s.lost), ("duplicated", s.duplicated), ("flipped", s.flipped)] {
            assert!((700..1300).contains(&count), "{name}: {count} of 10000 at 10 %");
        }
        assert!(out.iter().any(|d| d.bytes != [0u8; 8]));
        assert!(out.windows(2).any(|w| w[0].at > w[1].at), "jitter never reordered");
    }

    #[test]
    fn output_path_loses_duplicates_reorders_and_heals() {
        let params = OutputPathParams {
            delay_us_min: 10,
            delay_us_jitter: 1000,
            loss_ppm: 100_000,
            dup_ppm: 100_000,
            fifo: false,
            outages: true,
        };
        let mut path = OutputPath::new(params, Rng::new(3));
        let mut out = Vec::new();
        for i in 0..5_000u64 {
            path.send(i * 100, &mut out);
        }
        for _ in 0..out.len() {
            assert!(path.arrive());
        }
        let s = path.stats;
        assert!((350..650).contains(&s.lost), "lost {} of 5000 at 10 %", s.lost);
        assert!(
            (350..650).contains(&s.duplicated),
            "duplicated {} of 5000 at 10 %",
            s.duplicated
        );
        assert!(out.windows(2).any(|w| w[0] > w[1]), "jitter never reordered");
        path.set_cut(true);
        path.set_cut(true);
        out.clear();
        path.send(0, &mut out);
        assert!(out.is_empty(), "an outage loses what is sent");
        assert!(!path.arrive(), "an outage loses what is in flight");
        path.set_cut(false);
        assert!(path.is_cut(), "outages nest");
        path.heal();
        assert!(!path.is_cut());
        for i in 0..1000u64 {
            path.send(i, &mut out);
        }
        assert_eq!(out.len(), 1000, "a healed path loses and duplicates nothing");
        assert!(out.iter().zip(0..).all(|(&at, i)| at >= i + 10_000), "the delay stays");
    }

    #[test]
    fn network_loss_burst_covers_only_its_links() {
        let mut n = net(LinkParams::clean(10, 0));
        n.burst_begin(7, 0b01, 1_000_000);
        let mut out = Vec::new();
        n.send(0, 0, 0, b"x", &mut out);
        assert!(out.is_empty());
        n.send(0, 0, 1, b"x", &mut out);
        assert_eq!(out.len(), 1);
        n.burst_end(7);
        n.send(0, 0, 0, b"x", &mut out);
        assert_eq!(out.len(), 2);
    }
}

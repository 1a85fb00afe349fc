//! A deterministic, in-process datagram network for tests.
//!
//! I/O contract: nothing here touches a socket, a clock or an OS random source. The caller
//! hands datagrams in with [`Net::send`] at the current virtual time, asks for the next
//! delivery time with [`Net::next_delivery`], moves the clock with [`Net::advance_to`] and pulls
//! due datagrams with [`Net::poll_deliver`]. Every random choice (loss, jitter, duplication)
//! comes from one seeded generator, so a run replays exactly from its seed.
//!
//! Links are directional and keyed by `(from, to)` socket addresses; a [`LinkConfig`] gives
//! delay, jitter (which reorders), random or Gilbert-Elliott bursty loss, duplication, an MTU
//! (larger datagrams are dropped, as with don't-fragment), a rate limit with a bounded
//! bottleneck queue, and blackhole windows (every datagram is dropped inside them).
//!
//! Sites behind NAT boxes ([`Net::add_nat`], module [`nat`]): a box translates and filters
//! what its inside hosts send and receive (endpoint-independent or port-randomising mapping, or
//! a firewall without translation; hairpinning on or off; flow timeouts), and
//! [`Net::set_internet_hops`] makes the path between sites long enough for TTL to matter
//! ([`Net::send_with_ttl`]; low-TTL probes open a box's flow without reaching the far side).
//! Links stay keyed by the addresses the sender used, before translation.
//!
//! Bounds: the in-flight set is bounded by [`Net::with_max_in_flight`] (default 1,000,000
//! datagrams); datagrams beyond it are dropped and counted. A NAT box tracks at most
//! [`NatConfig::max_flows`] flows.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

pub mod nat;

pub use nat::{Filtering, Mapping, NatConfig, NatCounters, NatId};
use nat::{NatBox, Outbound};

/// The TTL of a datagram sent with [`Net::send`] (JS's and Linux's default, 64).
pub const DEFAULT_TTL: u8 = 64;

/// A small, fast, seedable generator (SplitMix64). Good enough for impairment decisions.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.next_f64() < p
    }
    /// Uniform in `[0, max]`.
    pub fn duration_upto(&mut self, max: Duration) -> Duration {
        if max.is_zero() {
            return Duration::ZERO;
        }
        max.mul_f64(self.next_f64())
    }
}

/// How datagrams get lost on a link.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Loss {
    /// No loss.
    #[default]
    None,
    /// Independent (Bernoulli) loss with this probability.
    Random(f64),
    /// Gilbert-Elliott: a two-state chain. In the good state datagrams are lost with
    /// `loss_good`, in the bad state with `loss_bad`; each datagram first moves good->bad with
    /// `p_good_bad` and bad->good with `p_bad_good` (mean burst `1 / p_bad_good`). The chain
    /// models correlation between closely spaced datagrams: after [`GE_MEMORY`] without a
    /// datagram on the link, the state is redrawn from the stationary distribution (otherwise a
    /// sparse flow, such as ACKs during a retransmission timeout, would stay in a "burst" for
    /// seconds).
    GilbertElliott {
        /// Transition probability good -> bad.
        p_good_bad: f64,
        /// Transition probability bad -> good.
        p_bad_good: f64,
        /// Loss probability in the good state.
        loss_good: f64,
        /// Loss probability in the bad state.
        loss_bad: f64,
    },
}

impl Loss {
    /// Gilbert-Elliott loss with an average rate `rate` and mean burst length `burst`
    /// (full loss in the bad state, none in the good one).
    pub fn bursty(rate: f64, burst: f64) -> Loss {
        let p_bad_good = 1.0 / burst.max(1.0);
        // stationary P(bad) = pgb / (pgb + pbg) = rate
        let p_good_bad = if rate >= 1.0 {
            1.0
        } else {
            rate * p_bad_good / (1.0 - rate)
        };
        Loss::GilbertElliott {
            p_good_bad,
            p_bad_good,
            loss_good: 0.0,
            loss_bad: 1.0,
        }
    }
}

/// How long the Gilbert-Elliott chain remembers its state between datagrams.
pub const GE_MEMORY: Duration = Duration::from_millis(10);

/// Impairments of one direction of one link.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LinkConfig {
    /// Fixed one-way delay.
    pub delay: Duration,
    /// Extra uniformly random delay in `[0, jitter]` per datagram; reorders datagrams.
    pub jitter: Duration,
    /// Probability that a datagram gets an extra `reorder_delay` (reordering without jitter).
    pub reorder: f64,
    /// Extra delay of reordered datagrams.
    pub reorder_delay: Duration,
    /// Loss model.
    pub loss: Loss,
    /// Probability that a datagram is delivered twice (the copy gets its own jitter).
    pub duplicate: f64,
    /// Largest datagram (UDP payload bytes) that passes; larger ones are dropped.
    pub mtu: Option<usize>,
    /// Bottleneck rate in bytes per second; `None` = infinite.
    pub rate: Option<u64>,
    /// Bottleneck queue in bytes (tail drop); only with `rate`. 0 means 256 KiB.
    pub queue_bytes: usize,
    /// Windows of virtual time (offsets from the start of the simulation) in which every
    /// datagram sent is dropped.
    pub blackholes: Vec<(Duration, Duration)>,
}

/// Byte and datagram counters of one link direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Datagrams handed to [`Net::send`].
    pub sent: u64,
    /// Bytes handed to [`Net::send`].
    pub sent_bytes: u64,
    /// Datagrams delivered (duplicates included).
    pub delivered: u64,
    /// Bytes delivered.
    pub delivered_bytes: u64,
    /// Datagrams lost to the loss model.
    pub lost: u64,
    /// Datagrams dropped for exceeding the MTU.
    pub too_big: u64,
    /// Datagrams dropped inside a blackhole window.
    pub blackholed: u64,
    /// Datagrams dropped by a full bottleneck queue or the in-flight cap.
    pub queue_dropped: u64,
    /// Extra copies made by duplication.
    pub duplicated: u64,
    /// Datagrams whose TTL ran out between sites (see [`Net::set_internet_hops`]).
    pub ttl_expired: u64,
}

/// A datagram on its way or delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// Source address.
    pub from: SocketAddr,
    /// Destination address.
    pub to: SocketAddr,
    /// Payload.
    pub data: Vec<u8>,
}

#[derive(Debug)]
struct InFlight {
    at: Instant,
    order: u64,
    /// The link the datagram travels, `(from, to)` as the sender gave them.
    link: (SocketAddr, SocketAddr),
    /// TTL left on arrival.
    ttl: u8,
    dgram: Datagram,
}

impl PartialEq for InFlight {
    fn eq(&self, o: &Self) -> bool {
        self.at == o.at && self.order == o.order
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for InFlight {
    fn cmp(&self, o: &Self) -> Ordering {
        // min-heap on (at, order)
        o.at.cmp(&self.at).then(o.order.cmp(&self.order))
    }
}

#[derive(Debug, Default)]
struct LinkState {
    config: LinkConfig,
    dynamic: Dynamic,
    counters: Counters,
}

/// The state a link's models carry from one datagram to the next.
#[derive(Debug, Default)]
struct Dynamic {
    /// Gilbert-Elliott chain in its bad state.
    bad: bool,
    /// When the bottleneck is free again.
    busy_until: Option<Instant>,
    /// Last datagram sent on the link.
    last_send: Option<Instant>,
}

impl LinkConfig {
    /// Whether the models of this configuration carry state between datagrams.
    fn needs_link_state(&self) -> bool {
        self.rate.is_some() || matches!(self.loss, Loss::GilbertElliott { .. })
    }
}

impl Counters {
    fn add(&mut self, o: &Counters) {
        self.sent += o.sent;
        self.sent_bytes += o.sent_bytes;
        self.delivered += o.delivered;
        self.delivered_bytes += o.delivered_bytes;
        self.lost += o.lost;
        self.too_big += o.too_big;
        self.blackholed += o.blackholed;
        self.queue_dropped += o.queue_dropped;
        self.duplicated += o.duplicated;
        self.ttl_expired += o.ttl_expired;
    }

    fn subtract(&mut self, o: &Counters) {
        self.sent -= o.sent;
        self.sent_bytes -= o.sent_bytes;
        self.delivered -= o.delivered;
        self.delivered_bytes -= o.delivered_bytes;
        self.lost -= o.lost;
        self.too_big -= o.too_big;
        self.blackholed -= o.blackholed;
        self.queue_dropped -= o.queue_dropped;
        self.duplicated -= o.duplicated;
        self.ttl_expired -= o.ttl_expired;
    }
}

/// The simulated network and its virtual clock.
#[derive(Debug)]
pub struct Net {
    start: Instant,
    now: Instant,
    rng: Rng,
    default_link: LinkConfig,
    links: HashMap<(SocketAddr, SocketAddr), LinkState>,
    /// Whether links without their own configuration keep per-link state (counters, loss
    /// chain, bottleneck). See [`Net::with_stateless_default_links`].
    default_link_state: bool,
    totals: Counters,
    queue: BinaryHeap<InFlight>,
    order: u64,
    max_in_flight: usize,
    nats: Vec<NatBox>,
    /// Inside address -> its box.
    nat_inside: BTreeMap<IpAddr, usize>,
    /// Public address -> its box.
    nat_public: BTreeMap<IpAddr, usize>,
    internet_hops: u8,
}

impl Net {
    /// A network whose clock starts at `start`, with every random choice drawn from `seed`.
    pub fn new(start: Instant, seed: u64) -> Self {
        Net {
            start,
            now: start,
            rng: Rng::new(seed),
            default_link: LinkConfig::default(),
            links: HashMap::new(),
            default_link_state: true,
            totals: Counters::default(),
            queue: BinaryHeap::new(),
            order: 0,
            max_in_flight: 1_000_000,
            nats: Vec::new(),
            nat_inside: BTreeMap::new(),
            nat_public: BTreeMap::new(),
            internet_hops: 0,
        }
    }

    /// Puts the hosts `inside` behind a NAT box with the address `public`. Addresses must be
    /// distinct across boxes (a later box takes an address over). For a firewall
    /// ([`Mapping::None`]) `public` is one more protected host and the inside addresses are
    /// public too. Hosts of one box reach each other directly (a LAN), untranslated.
    pub fn add_nat(&mut self, public: IpAddr, inside: &[IpAddr], cfg: NatConfig) -> NatId {
        let id = self.nats.len();
        let b = NatBox::new(public, inside, cfg);
        for ip in b.inside() {
            self.nat_inside.insert(*ip, id);
            if b.is_public(*ip) {
                self.nat_public.insert(*ip, id);
            }
        }
        self.nat_public.insert(b.public(), id);
        self.nats.push(b);
        NatId(id)
    }

    /// What box `id` did so far.
    pub fn nat_counters(&self, id: NatId) -> NatCounters {
        self.nats.get(id.0).map(|b| b.counters).unwrap_or_default()
    }

    /// Flows box `id` tracks now (expired ones are removed as the box sees traffic).
    pub fn nat_flows(&self, id: NatId) -> usize {
        self.nats.get(id.0).map_or(0, NatBox::flows)
    }

    /// The public address box `id` gives the live flow `inside -> remote`.
    pub fn nat_public_address(
        &self,
        id: NatId,
        inside: SocketAddr,
        remote: SocketAddr,
    ) -> Option<SocketAddr> {
        self.nats.get(id.0)?.public_of(inside, remote)
    }

    /// Hops a datagram crosses between sites (between NAT boxes or open hosts); a datagram
    /// whose TTL is not larger dies on the way (counted in [`Counters::ttl_expired`]). 0 (the
    /// default) ignores TTL between sites. A NAT box is one more hop on each side.
    pub fn set_internet_hops(&mut self, hops: u8) {
        self.internet_hops = hops;
    }

    /// Caps the number of datagrams in flight.
    pub fn with_max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n;
        self
    }

    /// Keeps no per-link state for links not configured with [`Net::set_link`], so that a
    /// network of many nodes (a 10,000-node DHT talks over millions of node pairs) costs memory
    /// only for the datagrams in flight. Their traffic is counted in [`Net::totals`] only. A
    /// default configuration with state of its own (Gilbert-Elliott loss, a `rate` bottleneck)
    /// still gets per-link state.
    pub fn with_stateless_default_links(mut self) -> Self {
        self.default_link_state = false;
        self
    }

    /// Counters summed over every link.
    pub fn totals(&self) -> Counters {
        self.totals
    }

    /// The configuration of links not configured with [`Net::set_link`].
    pub fn set_default_link(&mut self, cfg: LinkConfig) {
        self.default_link = cfg;
    }

    /// Configures the direction `from -> to`.
    pub fn set_link(&mut self, from: SocketAddr, to: SocketAddr, cfg: LinkConfig) {
        self.link_mut(from, to).config = cfg;
    }

    /// Configures both directions between `a` and `b`.
    pub fn set_link_both(&mut self, a: SocketAddr, b: SocketAddr, cfg: LinkConfig) {
        self.set_link(a, b, cfg.clone());
        self.set_link(b, a, cfg);
    }

    fn link_mut(&mut self, from: SocketAddr, to: SocketAddr) -> &mut LinkState {
        let def = &self.default_link;
        self.links.entry((from, to)).or_insert_with(|| LinkState {
            config: def.clone(),
            ..LinkState::default()
        })
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Virtual time elapsed since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Counters of the direction `from -> to`.
    pub fn counters(&self, from: SocketAddr, to: SocketAddr) -> Counters {
        self.links
            .get(&(from, to))
            .map(|l| l.counters)
            .unwrap_or_default()
    }

    /// Number of datagrams in flight.
    pub fn in_flight(&self) -> usize {
        self.queue.len()
    }

    /// Sends a datagram at the current virtual time with the default TTL.
    pub fn send(&mut self, from: SocketAddr, to: SocketAddr, data: &[u8]) {
        self.send_with_ttl(from, to, data, DEFAULT_TTL);
    }

    /// Sends a datagram at the current virtual time with IP TTL `ttl`. A sender inside a NAT
    /// box goes through its box (translation, hairpin), then across the internet hops.
    pub fn send_with_ttl(&mut self, from: SocketAddr, to: SocketAddr, data: &[u8], ttl: u8) {
        let mut src = from;
        let mut ttl = ttl;
        let sbox = self.nat_inside.get(&from.ip()).copied();
        let lan = sbox.is_some() && sbox == self.nat_inside.get(&to.ip()).copied();
        if !lan {
            let mut hairpin = false;
            if let Some(b) = sbox.and_then(|b| self.nats.get_mut(b)) {
                hairpin = b.public() == to.ip();
                match b.outbound(from, to, ttl, self.now, &mut self.rng) {
                    Outbound::Forward(s, t) => (src, ttl) = (s, t),
                    Outbound::Drop => return,
                }
            }
            if !hairpin && self.internet_hops > 0 {
                if ttl <= self.internet_hops {
                    self.totals.ttl_expired += 1;
                    if let Some(l) = self.links.get_mut(&(from, to)) {
                        l.counters.ttl_expired += 1;
                    }
                    return;
                }
                ttl -= self.internet_hops;
            }
        }
        self.send_link(from, to, src, ttl, data);
    }

    fn send_link(
        &mut self,
        from: SocketAddr,
        to: SocketAddr,
        src: SocketAddr,
        ttl: u8,
        data: &[u8],
    ) {
        let now = self.now;
        let since_start = now - self.start;
        let stateless = !self.default_link_state
            && !self.default_link.needs_link_state()
            && !self.links.contains_key(&(from, to));
        let mut scratch = LinkState::default();
        let link = if stateless {
            &mut scratch
        } else {
            let def = &self.default_link;
            self.links.entry((from, to)).or_insert_with(|| LinkState {
                config: def.clone(),
                ..LinkState::default()
            })
        };
        let cfg = if stateless {
            &self.default_link
        } else {
            &link.config
        };
        let before = link.counters;
        let deliveries = decide(
            cfg,
            &mut link.dynamic,
            &mut link.counters,
            &mut self.rng,
            now,
            since_start,
            data.len(),
        );
        let mut d = link.counters;
        d.subtract(&before);
        self.totals.add(&d);
        let mut room = self.max_in_flight.saturating_sub(self.queue.len());
        for at in deliveries.into_iter().flatten() {
            if room == 0 {
                self.totals.queue_dropped += 1;
                if let Some(l) = self.links.get_mut(&(from, to)) {
                    l.counters.queue_dropped += 1;
                }
                continue;
            }
            room -= 1;
            self.order += 1;
            self.queue.push(InFlight {
                at,
                order: self.order,
                link: (from, to),
                ttl,
                dgram: Datagram {
                    from: src,
                    to,
                    data: data.to_vec(),
                },
            });
        }
    }

    /// When the next datagram arrives, if any is in flight.
    pub fn next_delivery(&self) -> Option<Instant> {
        self.queue.peek().map(|f| f.at)
    }

    /// Moves the clock forward to `t` (never backwards).
    pub fn advance_to(&mut self, t: Instant) {
        if t > self.now {
            self.now = t;
        }
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    /// Pops the next datagram whose arrival time is not after the current time.
    /// Datagrams a NAT box drops on arrival are skipped (and counted in its [`NatCounters`]).
    pub fn poll_deliver(&mut self) -> Option<Datagram> {
        loop {
            if self.queue.peek()?.at > self.now {
                return None;
            }
            let mut f = self.queue.pop()?;
            if !self.nat_inbound(&mut f) {
                continue;
            }
            let len = f.dgram.data.len() as u64;
            self.totals.delivered += 1;
            self.totals.delivered_bytes += len;
            if let Some(l) = self.links.get_mut(&f.link) {
                l.counters.delivered += 1;
                l.counters.delivered_bytes += len;
            }
            return Some(f.dgram);
        }
    }

    /// Passes an arriving datagram through the box in front of its destination, if any:
    /// rewrites its destination to the inside host, or returns false (dropped).
    fn nat_inbound(&mut self, f: &mut InFlight) -> bool {
        let (from, to) = (f.dgram.from, f.dgram.to);
        if let Some(&b) = self.nat_public.get(&to.ip()) {
            let Some(b) = self.nats.get_mut(b) else {
                return true;
            };
            if b.is_inside(from.ip()) {
                return true; // the same site
            }
            return match b.inbound(from, to, f.ttl, self.now) {
                Some(inside) => {
                    f.dgram.to = inside;
                    true
                }
                None => false,
            };
        }
        if let Some(b) = self
            .nat_inside
            .get(&to.ip())
            .and_then(|b| self.nats.get_mut(*b))
            && b.hides(to.ip())
            && !b.is_inside(from.ip())
        {
            b.counters.unroutable += 1;
            return false;
        }
        true
    }

    /// Draws from the simulation's generator (for callers that need seeded randomness).
    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }
}

/// The fate of one datagram on a link: when its copies (0, 1 or 2) arrive.
fn decide(
    cfg: &LinkConfig,
    st: &mut Dynamic,
    counters: &mut Counters,
    rng: &mut Rng,
    now: Instant,
    since_start: Duration,
    len: usize,
) -> [Option<Instant>; 2] {
    counters.sent += 1;
    counters.sent_bytes += len as u64;
    let prev_send = st.last_send.replace(now);
    let mut deliveries = [None, None];
    if cfg.mtu.is_some_and(|m| len > m) {
        counters.too_big += 1;
        return deliveries;
    }
    if cfg
        .blackholes
        .iter()
        .any(|(s, e)| since_start >= *s && since_start < *e)
    {
        counters.blackholed += 1;
        return deliveries;
    }
    let lost = match cfg.loss {
        Loss::None => false,
        Loss::Random(p) => rng.chance(p),
        Loss::GilbertElliott {
            p_good_bad,
            p_bad_good,
            loss_good,
            loss_bad,
        } => {
            if prev_send.is_none_or(|t| now.saturating_duration_since(t) > GE_MEMORY) {
                let total = p_good_bad + p_bad_good;
                st.bad = total > 0.0 && rng.chance(p_good_bad / total);
            } else if st.bad {
                if rng.chance(p_bad_good) {
                    st.bad = false;
                }
            } else if rng.chance(p_good_bad) {
                st.bad = true;
            }
            rng.chance(if st.bad { loss_bad } else { loss_good })
        }
    };
    if lost {
        counters.lost += 1;
        return deliveries;
    }
    // Bottleneck: serialise at `rate`, tail-drop beyond the queue.
    let mut depart = now;
    if let Some(rate) = cfg.rate.filter(|r| *r > 0) {
        let busy = st.busy_until.unwrap_or(now).max(now);
        let backlog = (busy - now).as_secs_f64() * rate as f64;
        let qcap = if cfg.queue_bytes == 0 {
            256 * 1024
        } else {
            cfg.queue_bytes
        };
        if backlog + len as f64 > qcap as f64 {
            counters.queue_dropped += 1;
            return deliveries;
        }
        depart = busy + Duration::from_secs_f64(len as f64 / rate as f64);
        st.busy_until = Some(depart);
    }
    let copies = if rng.chance(cfg.duplicate) { 2 } else { 1 };
    for slot in deliveries.iter_mut().take(copies) {
        let mut at = depart + cfg.delay + rng.duration_upto(cfg.jitter);
        if rng.chance(cfg.reorder) {
            at += cfg.reorder_delay;
        }
        *slot = Some(at);
    }
    if copies == 2 {
        counters.duplicated += 1;
    }
    deliveries
}

#[cfg(test)]
mod tests;

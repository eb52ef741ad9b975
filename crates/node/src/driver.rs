//! The tokio driver: sockets, frames and the clock around the protocol's `Node`.
//!
//! ```text
//!  TCP / unix listeners ──accepted──┐             ┌── per peer: reader task (frames in)
//!  dial tasks ───────────connected──┤             │              writer task (frames out,
//!  reader tasks ──messages, closed──┤             │              bounded queue)
//!  miner threads ──solutions────────┼──> main ────┤
//!  Handle (commands, inspect) ──────┤    loop     └── miner: templates in, solutions out
//!  timers, shutdown ────────────────┘  owns Node   (woken at Node::poll_timeout)
//! ```
//!
//! One task owns the node and feeds it every input in order: the seed's single sequential
//! main process. Frames are the protocol crate's (`powchain_protocol::frame`: a u32
//! big-endian length and a postcard message, the length checked against `FRAME_BYTES_MAX`
//! before any buffer is allocated); [`FrameCodec`] only adapts that module to tokio. A peer
//! whose outbound queue is full is too slow and is disconnected rather than buffered without
//! bound.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use powchain_chain::{MempoolError, Store, Timestamp, Transfer, TxId};
use powchain_protocol::frame::{self, Received};
use powchain_protocol::{
    Command, Direction, DisconnectReason, Event, Node, Output, PeerId, PeerInfo,
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::codec::{Decoder, Encoder, FramedRead, FramedWrite};

use crate::miner::{Miner, MinerConfig, Solution};

/// How the driver runs.
pub struct DriverConfig {
    /// A bound TCP listener, if the node accepts TCP peers.
    pub tcp: Option<TcpListener>,
    /// A bound unix-socket listener, if the node accepts local peers (see [`bind_unix`]).
    pub unix: Option<UnixListener>,
    /// The longest the driver lets the node sleep. The node says when it next needs waking
    /// (`Node::poll_timeout`: timeouts, pings, reconnections) and is woken then; this only
    /// bounds the wait.
    pub tick: Duration,
    /// Frames queued for one peer before it counts as too slow and is disconnected.
    pub peer_queue_frames_max: usize,
    /// Bytes queued for one peer before it counts as too slow and is disconnected.
    pub peer_queue_bytes_max: usize,
    /// Bytes queued for one peer above which nothing more is read from it until it has read
    /// them (Bitcoin Core's pause-send): what its requests cost us stays bounded by what it
    /// takes, instead of growing our memory. Reading also pauses above half of
    /// `peer_queue_frames_max` frames queued, so that many small answers (pongs to a backlog
    /// of pings) never reach the frame bound that would drop the peer.
    pub peer_send_pause_bytes: usize,
    /// Frames read from one peer and not yet handled by the node above which nothing more is
    /// read from it: a peer cannot queue work faster than the node does it.
    pub peer_frames_unhandled_max: usize,
    /// How long a dial may take.
    pub connect_timeout: Duration,
    /// Mining threads, if this node mines.
    pub miner: Option<MinerConfig>,
    /// How long shutdown waits for goodbyes to be written.
    pub shutdown_grace: Duration,
}

impl DriverConfig {
    /// No listeners, no miner, sensible timings.
    pub fn new() -> DriverConfig {
        DriverConfig {
            tcp: None,
            unix: None,
            tick: Duration::from_secs(60),
            peer_queue_frames_max: 1_024,
            peer_queue_bytes_max: 16 << 20,
            peer_send_pause_bytes: 1 << 20,
            peer_frames_unhandled_max: 4,
            connect_timeout: Duration::from_secs(5),
            miner: None,
            shutdown_grace: Duration::from_secs(2),
        }
    }
}

impl Default for DriverConfig {
    fn default() -> DriverConfig {
        DriverConfig::new()
    }
}

/// A closure run on the node by the driver's main loop: a read, never a change.
pub type Query<S> = Box<dyn FnOnce(&Node<S>) + Send>;

/// A closure that builds a transfer from a read of the node (its nonce, fee floor, chain).
pub type Builder<S> = Box<dyn FnOnce(&Node<S>) -> Transfer + Send>;

/// Something to do with the node, from outside.
pub enum Request<S: Store> {
    /// A user command.
    Command(Command),
    /// A transfer to submit, built from a read of the node in the same step (so a nonce
    /// read there is still the next one), answered with its id or why it was refused.
    Submit(Builder<S>, oneshot::Sender<Result<TxId, MempoolError>>),
    /// Transfers to submit together (their signatures checked in one batch), answered
    /// with one result each, in order.
    SubmitMany(
        Vec<Transfer>,
        oneshot::Sender<Vec<Result<TxId, MempoolError>>>,
    ),
    /// Runs a read-only closure on the node (queries and tests), in order with everything
    /// else: one consistent snapshot.
    Inspect(Query<S>),
    /// A connection over an in-memory pipe (a test or simulated transport).
    Attach(DuplexStream, PeerInfo),
    /// What the miner is doing.
    Mining(oneshot::Sender<MiningStatus>),
}

/// What the driver's miner is doing, for status pages and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MiningStatus {
    /// Mining threads (0: no miner).
    pub threads: usize,
    /// Whether the miner has a block to work on now.
    pub working: bool,
    /// Hashes tried since the node started.
    pub hashes: u64,
    /// Hashes per second while working: over the last measuring window (a few seconds), or
    /// over the time since work began when that is shorter. 0 while not working.
    pub hash_rate: f64,
}

/// How long the miner's hash rate is measured over.
const HASH_RATE_WINDOW: Duration = Duration::from_secs(2);

/// The way to talk to a running driver.
pub struct Handle<S: Store> {
    requests: mpsc::Sender<Request<S>>,
    peak_queued: Arc<AtomicUsize>,
}

impl<S: Store> Clone for Handle<S> {
    fn clone(&self) -> Handle<S> {
        Handle {
            requests: self.requests.clone(),
            peak_queued: self.peak_queued.clone(),
        }
    }
}

impl<S: Store + 'static> Handle<S> {
    /// The most bytes that were ever waiting to be written to one peer: what the peers'
    /// requests cost in memory at worst, held near [`DriverConfig::peer_send_pause_bytes`]
    /// by not reading from a peer that does not read.
    pub fn peak_send_queue_bytes(&self) -> usize {
        self.peak_queued.load(Ordering::Relaxed)
    }

    /// Sends a command; false if the driver has stopped.
    pub async fn command(&self, command: Command) -> bool {
        self.requests.send(Request::Command(command)).await.is_ok()
    }

    /// Hands the node one end of an in-memory pipe as a connection: a transport for tests
    /// and simulations that behaves like a socket (see [`memory_link`]).
    pub async fn attach(&self, pipe: DuplexStream, info: PeerInfo) -> bool {
        self.requests
            .send(Request::Attach(pipe, info))
            .await
            .is_ok()
    }

    /// Submits a transfer, as the seed's `MakeTransaction`: its id once it is in the mempool
    /// (and relayed), or why it was refused; `None` if the driver has stopped.
    pub async fn submit_transfer(&self, transfer: Transfer) -> Option<Result<TxId, MempoolError>> {
        self.build_and_submit(move |_| transfer).await
    }

    /// Submits many transfers at once (see [`Node::submit_transfers`]): one result each,
    /// in order; `None` if the driver has stopped.
    pub async fn submit_transfers(
        &self,
        transfers: Vec<Transfer>,
    ) -> Option<Vec<Result<TxId, MempoolError>>> {
        let (answer, receive) = oneshot::channel();
        self.requests
            .send(Request::SubmitMany(transfers, answer))
            .await
            .ok()?;
        receive.await.ok()
    }

    /// Builds a transfer from what the node says now (`build` reads it: the sender's next
    /// nonce, the fee floor) and submits it in the same step, with nothing in between.
    pub async fn build_and_submit(
        &self,
        build: impl FnOnce(&Node<S>) -> Transfer + Send + 'static,
    ) -> Option<Result<TxId, MempoolError>> {
        let (answer, receive) = oneshot::channel();
        self.requests
            .send(Request::Submit(Box::new(build), answer))
            .await
            .ok()?;
        receive.await.ok()
    }

    /// Runs `query` on the node (a read: it gets `&Node`) and returns its answer; `None` if
    /// the driver has stopped.
    pub async fn inspect<R: Send + 'static>(
        &self,
        query: impl FnOnce(&Node<S>) -> R + Send + 'static,
    ) -> Option<R> {
        let (answer, receive) = oneshot::channel();
        let request = Request::Inspect(Box::new(move |node: &Node<S>| {
            let _ = answer.send(query(node));
        }));
        self.requests.send(request).await.ok()?;
        receive.await.ok()
    }

    /// Waits until the driver has stopped (shut down, or ended by a store failure: see
    /// [`Node::failure`]).
    pub async fn stopped(&self) {
        self.requests.closed().await;
    }

    /// What the miner is doing; `None` if the driver has stopped.
    pub async fn mining(&self) -> Option<MiningStatus> {
        let (answer, receive) = oneshot::channel();
        self.requests.send(Request::Mining(answer)).await.ok()?;
        receive.await.ok()
    }
}

/// When to wake the node: at its next deadline (`Node::poll_timeout`, on the wall clock),
/// at the latest `longest` from now.
fn wake_at<S: Store>(node: &Node<S>, longest: Duration) -> tokio::time::Instant {
    let start = tokio::time::Instant::now();
    let wait = node.poll_timeout().map_or(longest, |deadline| {
        Duration::from_millis(deadline.ms_since(now())).min(longest)
    });
    start + wait
}

/// The milliseconds since the Unix epoch: the node's `now`.
pub fn now() -> Timestamp {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis());
    Timestamp(u64::try_from(millis).unwrap_or(u64::MAX))
}

/// Binds a unix socket at `path`. A socket file left by a dead node (nothing answers on it)
/// is replaced; a live node there is an error, not a takeover.
pub fn bind_unix(path: &Path) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if path.exists() {
        match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("a node is already listening at {}", path.display()),
                ));
            }
            Err(_) => std::fs::remove_file(path)?,
        }
    }
    UnixListener::bind(path)
}

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
    Memory(DuplexStream),
}

/// Connects two running drivers through an in-memory pipe of `buffer_bytes`, as if `from`
/// had dialled `to` (whose address is `to_address`).
pub async fn memory_link<S: Store + 'static, T: Store + 'static>(
    from: &Handle<S>,
    to: &Handle<T>,
    to_address: &str,
    buffer_bytes: usize,
) -> bool {
    let (outbound, inbound) = tokio::io::duplex(buffer_bytes);
    let dialled = PeerInfo {
        address: to_address.to_owned(),
        ban_key: to_address.to_owned(),
        direction: Direction::Outbound,
    };
    let accepted = PeerInfo {
        address: format!("memory-peer-of-{to_address}"),
        ban_key: format!("memory-peer-of-{to_address}"),
        direction: Direction::Inbound,
    };
    from.attach(outbound, dialled).await && to.attach(inbound, accepted).await
}

enum Input {
    Connected {
        stream: Stream,
        info: PeerInfo,
    },
    DialFailed {
        address: String,
        reason: String,
    },
    /// One frame, decoded or not.
    Frame {
        peer: PeerId,
        frame: Received,
    },
    Closed {
        peer: PeerId,
    },
}

enum Outgoing {
    Frame(Bytes),
    Close,
}

struct Connection {
    outgoing: mpsc::Sender<Outgoing>,
    flow: Arc<Flow>,
    reader: JoinHandle<()>,
    writer: tokio::task::AbortHandle,
}

/// What a connection's reader, its writer and the event loop share, so the reader reads only
/// while the peer is worth reading: the bytes queued for the writer and not yet written, the
/// frames read and not yet handled, and a wake-up for a paused reader when either goes down.
struct Flow {
    queued: AtomicUsize,
    queued_frames: AtomicUsize,
    unhandled: AtomicUsize,
    /// The node's clock (ms) before which nothing is read: the peer is over its message
    /// budget.
    resume_at: AtomicU64,
    changed: tokio::sync::Notify,
    pause_bytes: usize,
    pause_frames: usize,
    unhandled_max: usize,
}

impl Flow {
    fn new(pause_bytes: usize, pause_frames: usize, unhandled_max: usize) -> Flow {
        Flow {
            queued: AtomicUsize::new(0),
            queued_frames: AtomicUsize::new(0),
            unhandled: AtomicUsize::new(0),
            resume_at: AtomicU64::new(0),
            changed: tokio::sync::Notify::new(),
            pause_bytes,
            pause_frames,
            unhandled_max,
        }
    }

    /// Until the peer has read what it is owed, the node has handled its frames, and the
    /// peer is within its message budget again.
    async fn wait_until_readable(&self) {
        loop {
            while self.queued.load(Ordering::Relaxed) > self.pause_bytes
                || self.queued_frames.load(Ordering::Relaxed) > self.pause_frames
                || self.unhandled.load(Ordering::Relaxed) >= self.unhandled_max.max(1)
            {
                // `notify_one` keeps a permit when nobody waits, so a change between the
                // check and this wait is not missed.
                self.changed.notified().await;
            }
            let wait_ms = self
                .resume_at
                .load(Ordering::Relaxed)
                .saturating_sub(now().0);
            if wait_ms == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(wait_ms)).await;
        }
    }

    fn pause_until(&self, until: Timestamp) {
        self.resume_at.fetch_max(until.0, Ordering::Relaxed);
    }

    fn written(&self, bytes: usize) {
        self.queued.fetch_sub(bytes, Ordering::Relaxed);
        self.queued_frames.fetch_sub(1, Ordering::Relaxed);
        self.changed.notify_one();
    }

    fn handled(&self) {
        self.unhandled.fetch_sub(1, Ordering::Relaxed);
        self.changed.notify_one();
    }
}

/// How long writing one frame (or flushing at the end) may take before the peer is given up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// The protocol's frames (`powchain_protocol::frame`) as a tokio codec: in, a
/// [`Received`] per frame, the length checked against the maximum before anything is
/// allocated for it; out, frames already encoded with their length.
#[derive(Clone, Copy, Debug, Default)]
pub struct FrameCodec;

impl Decoder for FrameCodec {
    type Item = Received;
    type Error = io::Error;

    fn decode(&mut self, buffer: &mut BytesMut) -> io::Result<Option<Received>> {
        match frame::split(buffer) {
            Ok(Some(end)) => {
                let whole = buffer.split_to(end);
                Ok(Some(Received::decode(&whole[frame::LENGTH_PREFIX_BYTES..])))
            }
            Ok(None) => {
                // Room for the rest of this frame (its length was checked), or a prefix.
                let wanted = buffer
                    .first_chunk::<{ frame::LENGTH_PREFIX_BYTES }>()
                    .map_or(frame::LENGTH_PREFIX_BYTES, |prefix| {
                        frame::LENGTH_PREFIX_BYTES + u32::from_be_bytes(*prefix) as usize
                    });
                buffer.reserve(wanted.saturating_sub(buffer.len()));
                Ok(None)
            }
            // The stream cannot be read past a bad length: hand the node the error, once.
            Err(error) => {
                buffer.clear();
                Ok(Some(Received::error(error)))
            }
        }
    }
}

impl Encoder<Bytes> for FrameCodec {
    type Error = io::Error;

    fn encode(&mut self, frame: Bytes, buffer: &mut BytesMut) -> io::Result<()> {
        buffer.extend_from_slice(&frame);
        Ok(())
    }
}

/// Runs the node until `shutdown` turns true; returns it for inspection. Events go to
/// `events` (dropped when that queue is full, so a slow reader never stalls the node).
async fn run<S: Store + Send + 'static>(
    mut node: Node<S>,
    mut config: DriverConfig,
    mut requests: mpsc::Receiver<Request<S>>,
    events: mpsc::Sender<Event>,
    mut shutdown: watch::Receiver<bool>,
    peak_queued: Arc<AtomicUsize>,
) -> Node<S> {
    let (inputs, mut input_queue) = mpsc::channel::<Input>(4_096);
    let mut listeners = Vec::new();
    if let Some(listener) = config.tcp.take() {
        listeners.push(tokio::spawn(accept_loop(listener, inputs.clone())));
    }
    if let Some(listener) = config.unix.take() {
        let listener = UnixAccept {
            listener,
            accepted: 0,
        };
        listeners.push(tokio::spawn(accept_loop(listener, inputs.clone())));
    }
    let (solution_sender, mut solutions) = mpsc::channel::<Solution>(16);
    let miner = match config.miner {
        Some(miner_config) => {
            let (std_sender, std_receiver) = std::sync::mpsc::channel::<Solution>();
            // Bridge the miner's threads into the async world.
            std::thread::spawn(move || {
                while let Ok(solution) = std_receiver.recv() {
                    if solution_sender.blocking_send(solution).is_err() {
                        break;
                    }
                }
            });
            match Miner::start(miner_config, std_sender) {
                Ok(miner) => Some(miner),
                Err(error) => {
                    let _ = events.try_send(Event::StoreFailed(format!(
                        "cannot start the miner: {error}"
                    )));
                    None
                }
            }
        }
        None => None,
    };
    let mut io = Io {
        connections: HashMap::new(),
        writers: Vec::new(),
        next_peer: 1,
        inputs: inputs.clone(),
        queue_frames_max: config.peer_queue_frames_max,
        queue_bytes_max: config.peer_queue_bytes_max,
        send_pause_bytes: config.peer_send_pause_bytes,
        frames_unhandled_max: config.peer_frames_unhandled_max,
        peak_queued,
        connect_timeout: config.connect_timeout,
        miner,
        mining_generation: None,
        working: false,
        rate: HashRate::new(),
        events,
    };
    // The miner's rate is measured on its own clock, and only while it works; the node is
    // woken when its timers say (`Node::poll_timeout`), at the latest after `config.tick`.
    let mut rate_clock = tokio::time::interval(HASH_RATE_WINDOW);
    rate_clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            Some(input) = input_queue.recv() => match input {
                Input::Connected { stream, info } => io.connect(&mut node, stream, info),
                Input::DialFailed { address, reason } => node.connect_failed(&address, &reason, now()),
                Input::Frame { peer, frame } => {
                    node.frame_received(peer, frame, now());
                    if let Some(connection) = io.connections.get(&peer) {
                        connection.flow.handled();
                    }
                }
                Input::Closed { peer } => {
                    io.drop_connection(peer);
                    node.peer_disconnected(peer, now());
                }
            },
            Some(request) = requests.recv() => match request {
                Request::Command(command) => node.command(command, now()),
                Request::Submit(build, answer) => {
                    let transfer = build(&node);
                    let _ = answer.send(node.submit_transfer(transfer, now()));
                }
                Request::SubmitMany(transfers, answer) => {
                    let _ = answer.send(node.submit_transfers(transfers, now()));
                }
                Request::Inspect(query) => query(&node),
                Request::Attach(pipe, info) => io.connect(&mut node, Stream::Memory(pipe), info),
                Request::Mining(answer) => {
                    let _ = answer.send(io.mining_status());
                }
            },
            Some(solution) = solutions.recv() => {
                if Some(solution.generation) == io.mining_generation {
                    node.block_mined(solution.block, now());
                }
            }
            _ = tokio::time::sleep_until(wake_at(&node, config.tick)) => node.tick(now()),
            _ = rate_clock.tick(), if io.working => io.measure_hash_rate(),
            _ = shutdown.changed() => break,
        }
        io.carry_out(&mut node);
        // The store failed: the chain in memory may be ahead of the file. Stop at once, so
        // that nothing is announced or answered from a state that was not written.
        if node.failure().is_some() {
            break;
        }
    }
    // Shut down: goodbyes to every peer, then give the writers a moment to send them.
    node.command(Command::Shutdown, now());
    io.carry_out(&mut node);
    for connection in io.connections.values() {
        connection.reader.abort();
    }
    let mut writers = std::mem::take(&mut io.writers);
    let _ = tokio::time::timeout(config.shutdown_grace, async {
        for writer in &mut writers {
            let _ = writer.await;
        }
    })
    .await;
    for writer in &writers {
        writer.abort();
    }
    for listener in listeners {
        listener.abort();
    }
    // Joining the mining threads blocks: not on a runtime worker.
    if let Some(miner) = io.miner.take() {
        let _ = tokio::task::spawn_blocking(move || drop(miner)).await;
    }
    node
}

/// The driver's side of the node's outputs: connections, the miner, the event stream.
struct Io {
    connections: HashMap<PeerId, Connection>,
    writers: Vec<JoinHandle<()>>,
    next_peer: PeerId,
    inputs: mpsc::Sender<Input>,
    queue_frames_max: usize,
    queue_bytes_max: usize,
    send_pause_bytes: usize,
    frames_unhandled_max: usize,
    /// The most bytes ever queued for one peer (see [`Handle::peak_send_queue_bytes`]).
    peak_queued: Arc<AtomicUsize>,
    connect_timeout: Duration,
    miner: Option<Miner>,
    mining_generation: Option<u64>,
    /// Whether the miner was last given a block (not paused).
    working: bool,
    rate: HashRate,
    events: mpsc::Sender<Event>,
}

impl Io {
    fn measure_hash_rate(&mut self) {
        if let Some(miner) = &self.miner
            && self.working
        {
            self.rate.measure(miner.hashes());
        }
    }

    fn mining_status(&self) -> MiningStatus {
        match &self.miner {
            Some(miner) => MiningStatus {
                threads: miner.config().threads,
                working: self.working,
                hashes: miner.hashes(),
                hash_rate: if self.working {
                    self.rate.current(miner.hashes())
                } else {
                    0.0
                },
            },
            None => MiningStatus::default(),
        }
    }
}

/// The miner's hash rate, measured only while it works (idle time would dilute it).
struct HashRate {
    /// When the current window began, and the hash count then.
    since: Instant,
    hashes_then: u64,
    /// The last whole window's rate (`None` until one has passed since work began).
    last: Option<f64>,
}

impl HashRate {
    fn new() -> HashRate {
        HashRate {
            since: Instant::now(),
            hashes_then: 0,
            last: None,
        }
    }

    /// Work begins (again) with the miner's count at `hashes`.
    fn restart(&mut self, hashes: u64) {
        self.since = Instant::now();
        self.hashes_then = hashes;
        self.last = None;
    }

    /// Closes the window once it is long enough.
    fn measure(&mut self, hashes: u64) {
        let elapsed = self.since.elapsed();
        if elapsed >= HASH_RATE_WINDOW {
            self.last =
                Some(hashes.saturating_sub(self.hashes_then) as f64 / elapsed.as_secs_f64());
            self.since = Instant::now();
            self.hashes_then = hashes;
        }
    }

    /// The last window's rate, or the open window's while no window has closed yet.
    fn current(&self, hashes: u64) -> f64 {
        self.last.unwrap_or_else(|| {
            let elapsed = self.since.elapsed().as_secs_f64();
            if elapsed > 0.0 {
                hashes.saturating_sub(self.hashes_then) as f64 / elapsed
            } else {
                0.0
            }
        })
    }
}

impl Io {
    fn connect<S: Store>(&mut self, node: &mut Node<S>, stream: Stream, info: PeerInfo) {
        let peer = self.next_peer;
        self.next_peer += 1;
        let (connection, writer) = spawn_connection(
            peer,
            stream,
            self.inputs.clone(),
            self.queue_frames_max,
            Flow::new(
                self.send_pause_bytes,
                self.queue_frames_max / 2,
                self.frames_unhandled_max,
            ),
        );
        self.connections.insert(peer, connection);
        self.writers.push(writer);
        self.writers.retain(|writer| !writer.is_finished());
        node.peer_connected(peer, info, now());
    }

    /// Stops reading from a connection; its writer finishes what is queued (bounded by the
    /// write timeout) and closes.
    fn drop_connection(&mut self, peer: PeerId) {
        if let Some(connection) = self.connections.remove(&peer) {
            let _ = connection.outgoing.try_send(Outgoing::Close);
            connection.reader.abort();
        }
    }

    /// Carries out everything the node asked for, including what that in turn produced.
    fn carry_out<S: Store>(&mut self, node: &mut Node<S>) {
        loop {
            let outputs = node.outputs();
            if outputs.is_empty() {
                return;
            }
            for output in outputs {
                self.apply(node, output);
            }
        }
    }

    fn apply<S: Store>(&mut self, node: &mut Node<S>, output: Output) {
        match output {
            Output::Send { peer, message } => {
                let Some(connection) = self.connections.get(&peer) else {
                    return;
                };
                let bytes = Bytes::from(frame::encode(&message));
                let size = bytes.len();
                // Counted before the writer can see it, so the writer's subtraction never
                // comes first.
                let flow = &connection.flow;
                let queued = flow.queued.fetch_add(size, Ordering::Relaxed) + size;
                flow.queued_frames.fetch_add(1, Ordering::Relaxed);
                let fits = queued <= self.queue_bytes_max
                    && connection.outgoing.try_send(Outgoing::Frame(bytes)).is_ok();
                if fits {
                    self.peak_queued.fetch_max(queued, Ordering::Relaxed);
                    // Payload bytes, as the node counts what it receives.
                    node.frame_sent(peer, size - frame::LENGTH_PREFIX_BYTES);
                } else {
                    flow.queued.fetch_sub(size, Ordering::Relaxed);
                    flow.queued_frames.fetch_sub(1, Ordering::Relaxed);
                    // Too slow to keep up (or gone): let it go rather than buffer.
                    if let Some(connection) = self.connections.remove(&peer) {
                        connection.reader.abort();
                        connection.writer.abort();
                    }
                    node.peer_dropped(peer, DisconnectReason::SendQueueFull, now());
                }
            }
            Output::Connect(address) => {
                tokio::spawn(dial(address, self.inputs.clone(), self.connect_timeout));
            }
            Output::Disconnect { peer, .. } => self.drop_connection(peer),
            Output::PauseReading { peer, until } => {
                if let Some(connection) = self.connections.get(&peer) {
                    connection.flow.pause_until(until);
                }
            }
            Output::Mine(template) => {
                if let Some(miner) = &self.miner {
                    if template.is_some() && !self.working {
                        self.rate.restart(miner.hashes());
                    }
                    self.working = template.is_some();
                    self.mining_generation = Some(match template {
                        Some(block) => miner.mine(block),
                        None => miner.pause(),
                    });
                }
            }
            Output::Event(event) => {
                log(&event);
                let _ = self.events.try_send(event);
            }
        }
    }
}

/// Logs an event (through `tracing`; the binary decides where logs go).
fn log(event: &Event) {
    match event {
        Event::PeerReady {
            peer,
            address,
            direction,
            node_id,
            agent,
            number,
            height,
        } => {
            tracing::info!(peer, %address, ?direction, node_id, %agent, ?number, %height, "peer ready")
        }
        Event::PeerGone {
            peer,
            address,
            reason,
        } if reason.is_misbehaviour() => {
            tracing::warn!(peer, %address, %reason, "peer disconnected and refused for a while")
        }
        Event::PeerGone {
            peer,
            address,
            reason,
        } => tracing::info!(peer, %address, %reason, "peer disconnected"),
        Event::ConnectFailed { address, reason } => {
            tracing::info!(%address, %reason, "cannot connect")
        }
        Event::TipChanged {
            hash,
            height,
            disconnected,
            connected,
            from,
        } => tracing::info!(
            hash = %hash.short(16),
            %height,
            disconnected,
            connected,
            ?from,
            "new tip"
        ),
        Event::Mined { hash, height, txs } => {
            tracing::info!(hash = %hash.short(16), %height, txs, "mined a block")
        }
        Event::SyncProgress {
            height,
            remaining,
            blocks_per_sec,
        } => tracing::info!(%height, remaining, blocks_per_sec, "syncing"),
        Event::StoreFailed(error) => tracing::error!(%error, "the store failed"),
        other => tracing::debug!(event = ?other, "event"),
    }
}

fn spawn_connection(
    peer: PeerId,
    stream: Stream,
    inputs: mpsc::Sender<Input>,
    queue_max: usize,
    flow: Flow,
) -> (Connection, JoinHandle<()>) {
    let (outgoing, queue) = mpsc::channel(queue_max.max(1));
    let flow = Arc::new(flow);
    let (reader, writer) = match stream {
        Stream::Tcp(stream) => {
            let (read, write) = stream.into_split();
            spawn_halves(peer, read, write, inputs, queue, &flow)
        }
        Stream::Unix(stream) => {
            let (read, write) = stream.into_split();
            spawn_halves(peer, read, write, inputs, queue, &flow)
        }
        Stream::Memory(stream) => {
            let (read, write) = tokio::io::split(stream);
            spawn_halves(peer, read, write, inputs, queue, &flow)
        }
    };
    let connection = Connection {
        outgoing,
        flow,
        reader,
        writer: writer.abort_handle(),
    };
    (connection, writer)
}

/// The reader and writer tasks of one connection.
fn spawn_halves<R, W>(
    peer: PeerId,
    read: R,
    write: W,
    inputs: mpsc::Sender<Input>,
    queue: mpsc::Receiver<Outgoing>,
    flow: &Arc<Flow>,
) -> (JoinHandle<()>, JoinHandle<()>)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    (
        tokio::spawn(read_frames(peer, read, inputs, flow.clone())),
        tokio::spawn(write_frames(write, queue, flow.clone())),
    )
}

/// Reads frames while the peer is worth reading ([`Flow`]): a peer that does not read what
/// it asked for, or sends faster than the node handles, is simply not read from (TCP then
/// slows it down), so neither its answers nor its frames pile up in our memory.
async fn read_frames<R: AsyncRead + Unpin>(
    peer: PeerId,
    read: R,
    inputs: mpsc::Sender<Input>,
    flow: Arc<Flow>,
) {
    let mut frames = FramedRead::new(read, FrameCodec);
    loop {
        flow.wait_until_readable().await;
        let Some(Ok(frame)) = frames.next().await else {
            break;
        };
        let stop = frame.message.is_err();
        flow.unhandled.fetch_add(1, Ordering::Relaxed);
        if inputs.send(Input::Frame { peer, frame }).await.is_err() || stop {
            return;
        }
    }
    let _ = inputs.send(Input::Closed { peer }).await;
}

async fn write_frames<W: AsyncWrite + Unpin>(
    write: W,
    mut queue: mpsc::Receiver<Outgoing>,
    flow: Arc<Flow>,
) {
    let mut frames = FramedWrite::new(write, FrameCodec);
    while let Some(outgoing) = queue.recv().await {
        match outgoing {
            Outgoing::Frame(bytes) => {
                let size = bytes.len();
                let sent = tokio::time::timeout(WRITE_TIMEOUT, frames.send(bytes)).await;
                flow.written(size);
                if !matches!(sent, Ok(Ok(()))) {
                    return;
                }
            }
            Outgoing::Close => break,
        }
    }
    let _ = tokio::time::timeout(WRITE_TIMEOUT, SinkExt::<Bytes>::flush(&mut frames)).await;
    let _ = tokio::time::timeout(WRITE_TIMEOUT, frames.get_mut().shutdown()).await;
}

/// A listener the driver accepts peers from: TCP or a unix socket.
trait Accept: Send + 'static {
    /// The next connection, and what the node is told of it.
    fn next(&mut self) -> impl Future<Output = io::Result<(Stream, PeerInfo)>> + Send;
}

impl Accept for TcpListener {
    async fn next(&mut self) -> io::Result<(Stream, PeerInfo)> {
        let (stream, remote) = self.accept().await?;
        let _ = stream.set_nodelay(true);
        // A ban applies to the remote IP; on loopback every peer shares the IP, so there
        // the whole address is the key (bans then only refuse that exact connection's port).
        let ban_key = if remote.ip().is_loopback() {
            remote.to_string()
        } else {
            remote.ip().to_string()
        };
        let info = PeerInfo {
            address: remote.to_string(),
            ban_key,
            direction: Direction::Inbound,
        };
        Ok((Stream::Tcp(stream), info))
    }
}

/// A unix-socket listener; its peers have no address, so they are numbered.
struct UnixAccept {
    listener: UnixListener,
    accepted: u64,
}

impl Accept for UnixAccept {
    async fn next(&mut self) -> io::Result<(Stream, PeerInfo)> {
        let (stream, _) = self.listener.accept().await?;
        self.accepted += 1;
        let address = format!("unix-peer-{}", self.accepted);
        let info = PeerInfo {
            ban_key: address.clone(),
            address,
            direction: Direction::Inbound,
        };
        Ok((Stream::Unix(stream), info))
    }
}

/// Hands every accepted connection to the main loop until it stops.
async fn accept_loop(mut listener: impl Accept, inputs: mpsc::Sender<Input>) {
    loop {
        let Ok((stream, info)) = listener.next().await else {
            // Out of file descriptors and the like: wait a little instead of spinning.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        if inputs
            .send(Input::Connected { stream, info })
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Whether an address names a unix socket rather than `host:port`.
pub fn is_socket_path(address: &str) -> bool {
    address.contains('/')
}

async fn dial(address: String, inputs: mpsc::Sender<Input>, timeout: Duration) {
    let result = if is_socket_path(&address) {
        match tokio::time::timeout(timeout, UnixStream::connect(PathBuf::from(&address))).await {
            Ok(Ok(stream)) => Ok(Stream::Unix(stream)),
            Ok(Err(_)) => Err(format!(
                "nothing is listening at {address}: the node is not active"
            )),
            Err(_) => Err(format!("connecting to {address} timed out")),
        }
    } else {
        match tokio::time::timeout(timeout, TcpStream::connect(&address)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                Ok(Stream::Tcp(stream))
            }
            Ok(Err(error)) => Err(format!("cannot connect to {address}: {error}")),
            Err(_) => Err(format!("connecting to {address} timed out")),
        }
    };
    let input = match result {
        Ok(stream) => Input::Connected {
            stream,
            info: PeerInfo {
                ban_key: address.clone(),
                address,
                direction: Direction::Outbound,
            },
        },
        Err(reason) => Input::DialFailed { address, reason },
    };
    let _ = inputs.send(input).await;
}

/// Starts the driver on the current tokio runtime; returns the handle, the event stream,
/// the shutdown switch, and the task that yields the node when it stops.
#[allow(clippy::type_complexity)]
pub fn spawn<S: Store + Send + 'static>(
    node: Node<S>,
    config: DriverConfig,
) -> (
    Handle<S>,
    mpsc::Receiver<Event>,
    watch::Sender<bool>,
    JoinHandle<Node<S>>,
) {
    let (requests, request_queue) = mpsc::channel(256);
    let (event_sender, events) = mpsc::channel(4_096);
    let (shutdown, shutdown_watch) = watch::channel(false);
    let peak_queued = Arc::new(AtomicUsize::new(0));
    let task = tokio::spawn(run(
        node,
        config,
        request_queue,
        event_sender,
        shutdown_watch,
        peak_queued.clone(),
    ));
    let handle = Handle {
        requests,
        peak_queued,
    };
    (handle, events, shutdown, task)
}

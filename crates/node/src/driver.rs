//! The tokio driver: sockets, frames and the clock around the protocol's `Node`.
//!
//! ```text
//!  TCP / unix listeners ──accepted──┐             ┌── per peer: reader task (frames in)
//!  dial tasks ───────────connected──┤             │              writer task (frames out,
//!  reader tasks ──messages, closed──┤             │              bounded queue)
//!  miner threads ──solutions────────┼──> main ────┤
//!  Handle (commands, inspect) ──────┤    loop     └── miner: templates in, solutions out
//!  ticker, shutdown ────────────────┘  owns Node
//! ```
//!
//! One task owns the node and feeds it every input in order: the seed's single sequential
//! main process. Frames are a u32 big-endian length and a postcard message; the length is
//! checked against `FRAME_BYTES_MAX` before any buffer is allocated. A peer whose outbound
//! queue is full is too slow and is disconnected rather than buffered without bound.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use powchain_chain::{Store, Timestamp};
use powchain_protocol::message::FRAME_BYTES_MAX;
use powchain_protocol::{
    Command, Direction, Event, Message, MessageError, Node, Output, PeerId, PeerInfo,
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

use crate::miner::{Miner, MinerConfig, Solution};

/// How the driver runs.
pub struct DriverConfig {
    /// A bound TCP listener, if the node accepts TCP peers.
    pub tcp: Option<TcpListener>,
    /// A bound unix-socket listener, if the node accepts local peers (see [`bind_unix`]).
    pub unix: Option<UnixListener>,
    /// How often the node's clock ticks (timeouts, polls, reconnections).
    pub tick: Duration,
    /// Frames queued for one peer before it counts as too slow and is disconnected.
    pub peer_queue_frames_max: usize,
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
            tick: Duration::from_millis(100),
            peer_queue_frames_max: 1_024,
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

/// A closure run on the node by the driver's main loop.
pub type Query<S> = Box<dyn FnOnce(&mut Node<S>) + Send>;

/// Something to do with the node, from outside.
pub enum Request<S: Store> {
    /// A user command.
    Command(Command),
    /// Runs a closure on the node (queries and tests), in order with everything else.
    Inspect(Query<S>),
    /// A connection over an in-memory pipe (a test or simulated transport).
    Attach(DuplexStream, PeerInfo),
}

/// The way to talk to a running driver.
pub struct Handle<S: Store> {
    requests: mpsc::Sender<Request<S>>,
}

impl<S: Store> Clone for Handle<S> {
    fn clone(&self) -> Handle<S> {
        Handle {
            requests: self.requests.clone(),
        }
    }
}

impl<S: Store + 'static> Handle<S> {
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

    /// Runs `query` on the node and returns its answer; `None` if the driver has stopped.
    pub async fn inspect<R: Send + 'static>(
        &self,
        query: impl FnOnce(&mut Node<S>) -> R + Send + 'static,
    ) -> Option<R> {
        let (answer, receive) = oneshot::channel();
        let request = Request::Inspect(Box::new(move |node: &mut Node<S>| {
            let _ = answer.send(query(node));
        }));
        self.requests.send(request).await.ok()?;
        receive.await.ok()
    }
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
    Connected { stream: Stream, info: PeerInfo },
    DialFailed { address: String, reason: String },
    Message { peer: PeerId, message: Message },
    BadFrame { peer: PeerId, error: MessageError },
    Closed { peer: PeerId },
}

enum Outgoing {
    Frame(Bytes),
    Close,
}

struct Connection {
    outgoing: mpsc::Sender<Outgoing>,
    reader: JoinHandle<()>,
}

fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(4)
        .big_endian()
        .max_frame_length(FRAME_BYTES_MAX)
        .new_codec()
}

/// Runs the node until `shutdown` turns true; returns it for inspection. Events go to
/// `events` (dropped when that queue is full, so a slow reader never stalls the node).
pub async fn run<S: Store + Send + 'static>(
    mut node: Node<S>,
    mut config: DriverConfig,
    mut requests: mpsc::Receiver<Request<S>>,
    events: mpsc::Sender<Event>,
    mut shutdown: watch::Receiver<bool>,
) -> Node<S> {
    let (inputs, mut input_queue) = mpsc::channel::<Input>(4_096);
    let mut listeners = Vec::new();
    if let Some(listener) = config.tcp.take() {
        listeners.push(tokio::spawn(accept_tcp(listener, inputs.clone())));
    }
    if let Some(listener) = config.unix.take() {
        listeners.push(tokio::spawn(accept_unix(listener, inputs.clone())));
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
    let mut connections: HashMap<PeerId, Connection> = HashMap::new();
    let mut writers: Vec<JoinHandle<()>> = Vec::new();
    let mut next_peer: PeerId = 1;
    let mut ticker = tokio::time::interval(config.tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut mining_generation = None;
    loop {
        tokio::select! {
            Some(input) = input_queue.recv() => match input {
                Input::Connected { stream, info } => {
                    let peer = next_peer;
                    next_peer += 1;
                    let (connection, writer) =
                        spawn_connection(peer, stream, inputs.clone(), config.peer_queue_frames_max);
                    connections.insert(peer, connection);
                    writers.push(writer);
                    node.peer_connected(peer, info, now());
                }
                Input::DialFailed { address, reason } => node.connect_failed(&address, &reason, now()),
                Input::Message { peer, message } => node.message_received(peer, message, now()),
                Input::BadFrame { peer, error } => node.bad_frame(peer, &error, now()),
                Input::Closed { peer } => {
                    if let Some(connection) = connections.remove(&peer) {
                        connection.reader.abort();
                    }
                    node.peer_disconnected(peer, now());
                }
            },
            Some(request) = requests.recv() => match request {
                Request::Command(command) => node.command(command, now()),
                Request::Inspect(query) => query(&mut node),
                Request::Attach(pipe, info) => {
                    let peer = next_peer;
                    next_peer += 1;
                    let (connection, writer) = spawn_connection(
                        peer,
                        Stream::Memory(pipe),
                        inputs.clone(),
                        config.peer_queue_frames_max,
                    );
                    connections.insert(peer, connection);
                    writers.push(writer);
                    node.peer_connected(peer, info, now());
                }
            },
            Some(solution) = solutions.recv() => {
                if Some(solution.generation) == mining_generation {
                    node.block_mined(solution.block, now());
                }
            }
            _ = ticker.tick() => node.tick(now()),
            _ = shutdown.changed() => break,
        }
        for output in node.outputs() {
            match output {
                Output::Send { peer, message } => {
                    let Some(connection) = connections.get(&peer) else {
                        continue;
                    };
                    let frame = Outgoing::Frame(Bytes::from(message.encode()));
                    if connection.outgoing.try_send(frame).is_err() {
                        // Too slow to keep up (or gone): let it go rather than buffer.
                        if let Some(connection) = connections.remove(&peer) {
                            connection.reader.abort();
                        }
                        node.peer_disconnected(peer, now());
                    }
                }
                Output::Connect(address) => {
                    tokio::spawn(dial(address, inputs.clone(), config.connect_timeout));
                }
                Output::Disconnect { peer, .. } => {
                    if let Some(connection) = connections.remove(&peer) {
                        let _ = connection.outgoing.try_send(Outgoing::Close);
                        connection.reader.abort();
                    }
                }
                Output::Mine(template) => {
                    if let Some(miner) = &miner {
                        mining_generation = Some(match template {
                            Some(block) => miner.mine(block),
                            None => miner.pause(),
                        });
                    }
                }
                Output::Event(event) => {
                    log(&event);
                    let _ = events.try_send(event);
                }
            }
        }
        writers.retain(|writer| !writer.is_finished());
    }
    // Shut down: goodbyes to every peer, then give the writers a moment to send them.
    node.command(Command::Shutdown, now());
    for output in node.outputs() {
        match output {
            Output::Send { peer, message } => {
                if let Some(connection) = connections.get(&peer) {
                    let _ = connection
                        .outgoing
                        .try_send(Outgoing::Frame(Bytes::from(message.encode())));
                }
            }
            Output::Disconnect { peer, .. } => {
                if let Some(connection) = connections.remove(&peer) {
                    let _ = connection.outgoing.try_send(Outgoing::Close);
                    connection.reader.abort();
                }
            }
            Output::Event(event) => {
                let _ = events.try_send(event);
            }
            _ => {}
        }
    }
    for connection in connections.into_values() {
        connection.reader.abort();
    }
    let _ = tokio::time::timeout(config.shutdown_grace, async {
        for writer in writers {
            let _ = writer.await;
        }
    })
    .await;
    for listener in listeners {
        listener.abort();
    }
    drop(miner);
    node
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
            height,
        } => tracing::info!(peer, %address, ?direction, node_id, %agent, %height, "peer ready"),
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
) -> (Connection, JoinHandle<()>) {
    let (outgoing, queue) = mpsc::channel(queue_max.max(1));
    let (reader, writer) = match stream {
        Stream::Tcp(stream) => {
            let (read, write) = stream.into_split();
            (
                tokio::spawn(read_frames(peer, read, inputs)),
                tokio::spawn(write_frames(write, queue)),
            )
        }
        Stream::Unix(stream) => {
            let (read, write) = stream.into_split();
            (
                tokio::spawn(read_frames(peer, read, inputs)),
                tokio::spawn(write_frames(write, queue)),
            )
        }
        Stream::Memory(stream) => {
            let (read, write) = tokio::io::split(stream);
            (
                tokio::spawn(read_frames(peer, read, inputs)),
                tokio::spawn(write_frames(write, queue)),
            )
        }
    };
    (Connection { outgoing, reader }, writer)
}

async fn read_frames<R: AsyncRead + Unpin>(peer: PeerId, read: R, inputs: mpsc::Sender<Input>) {
    let mut frames = FramedRead::new(read, codec());
    while let Some(frame) = frames.next().await {
        let input = match frame {
            Ok(bytes) => match Message::decode(&bytes) {
                Ok(message) => Input::Message { peer, message },
                Err(error) => Input::BadFrame { peer, error },
            },
            // The codec refuses a length over the maximum before allocating for it.
            Err(error) if error.kind() == io::ErrorKind::InvalidData => Input::BadFrame {
                peer,
                error: MessageError::Undecodable(format!("frame: {error}")),
            },
            Err(_) => break,
        };
        let stop = matches!(input, Input::BadFrame { .. });
        if inputs.send(input).await.is_err() || stop {
            return;
        }
    }
    let _ = inputs.send(Input::Closed { peer }).await;
}

async fn write_frames<W: AsyncWrite + Unpin>(write: W, mut queue: mpsc::Receiver<Outgoing>) {
    let mut frames = FramedWrite::new(write, codec());
    while let Some(outgoing) = queue.recv().await {
        match outgoing {
            Outgoing::Frame(bytes) => {
                if frames.send(bytes).await.is_err() {
                    return;
                }
            }
            Outgoing::Close => break,
        }
    }
    let _ = SinkExt::<Bytes>::flush(&mut frames).await;
    let _ = frames.get_mut().shutdown().await;
}

async fn accept_tcp(listener: TcpListener, inputs: mpsc::Sender<Input>) {
    loop {
        let Ok((stream, remote)) = listener.accept().await else {
            // Out of file descriptors and the like: wait a little instead of spinning.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
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
        if inputs
            .send(Input::Connected {
                stream: Stream::Tcp(stream),
                info,
            })
            .await
            .is_err()
        {
            return;
        }
    }
}

async fn accept_unix(listener: UnixListener, inputs: mpsc::Sender<Input>) {
    let mut accepted = 0u64;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        accepted += 1;
        let address = format!("unix-peer-{accepted}");
        let info = PeerInfo {
            ban_key: address.clone(),
            address,
            direction: Direction::Inbound,
        };
        if inputs
            .send(Input::Connected {
                stream: Stream::Unix(stream),
                info,
            })
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
    let task = tokio::spawn(run(
        node,
        config,
        request_queue,
        event_sender,
        shutdown_watch,
    ));
    (Handle { requests }, events, shutdown, task)
}

//! A Kafka proxy a test can cut, heal and point at another cluster: the network between one client and its broker.
//!
//! A Kafka client only bootstraps through the address it is given; it then connects to the brokers the cluster
//! advertises in its Metadata (and, for consumer groups, FindCoordinator) responses. A plain TCP proxy would see
//! the bootstrap only. This one rewrites the advertised broker address in those responses to its own, so every
//! connection the client makes goes through it, and cutting it cuts the client off entirely.
//!
//! It speaks just enough of the Kafka protocol for that: the request header (to know which response answers which
//! request) and the broker fields of Metadata (v0–v12) and FindCoordinator (v0–v3) responses. It fronts a
//! single-broker cluster, like the embedded mock cluster the tests use.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{
        TcpListener, TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
    task::JoinSet,
};

const METADATA: i16 = 3;
const FIND_COORDINATOR: i16 = 10;

/// A proxy in front of one Kafka broker.
#[derive(Debug)]
pub struct KafkaProxy {
    address: SocketAddr,
    state: Arc<Mutex<State>>,
    accepting: tokio::task::JoinHandle<()>,
}

#[derive(Debug)]
struct State {
    upstream: String,
    cut: bool,
    connections: JoinSet<()>,
}

impl KafkaProxy {
    /// A proxy forwarding to the broker at `upstream` (`host:port`), open.
    pub async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("Failed to bind the Kafka proxy");
        let address = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            upstream: upstream.to_owned(),
            cut: false,
            connections: JoinSet::new(),
        }));
        let accepting = tokio::spawn(accept(listener, address, state.clone()));
        Self { address, state, accepting }
    }

    /// What clients should use as their bootstrap servers.
    pub fn bootstrap(&self) -> String {
        self.address.to_string()
    }

    /// Cuts the network: every connection is reset (bytes in flight are lost, as on a real cut) and new ones are
    /// refused until [`heal`](Self::heal).
    pub fn cut(&self) {
        let mut state = self.state.lock().unwrap();
        state.cut = true;
        state.connections.abort_all();
    }

    /// Lets connections through again.
    pub fn heal(&self) {
        self.state.lock().unwrap().cut = false;
    }

    /// Points the proxy at another broker, as a fail-over to another cluster would, resetting every connection.
    pub fn redirect(&self, upstream: &str) {
        let mut state = self.state.lock().unwrap();
        state.upstream = upstream.to_owned();
        state.connections.abort_all();
    }
}

impl Drop for KafkaProxy {
    fn drop(&mut self) {
        self.accepting.abort();
        self.state.lock().unwrap().connections.abort_all();
    }
}

async fn accept(listener: TcpListener, address: SocketAddr, state: Arc<Mutex<State>>) {
    loop {
        let Ok((client, _)) = listener.accept().await else { continue };
        let mut guard = state.lock().unwrap();
        if guard.cut {
            reset(&client);
            continue;
        }
        let upstream = guard.upstream.clone();
        guard.connections.spawn(relay(client, upstream, address));
    }
}

/// Closing with a zero linger sends a reset: the peer sees the connection fail, not end.
fn reset(stream: &TcpStream) {
    let _ = stream.set_zero_linger();
}

/// Carries one client connection to the broker and back, rewriting broker addresses in the responses.
async fn relay(client: TcpStream, upstream: String, address: SocketAddr) {
    let Ok(broker) = TcpStream::connect(&upstream).await else {
        reset(&client);
        return;
    };
    for stream in [&client, &broker] {
        reset(stream);
        let _ = stream.set_nodelay(true);
    }
    let (client_read, client_write) = client.into_split();
    let (broker_read, broker_write) = broker.into_split();
    let pending: Arc<Mutex<HashMap<i32, (i16, i16)>>> = Arc::default();
    tokio::select! {
        () = requests(client_read, broker_write, pending.clone()) => {}
        () = responses(broker_read, client_write, pending, address) => {}
    }
}

/// Reads one size-prefixed Kafka frame.
async fn read_frame(from: &mut OwnedReadHalf) -> Option<Vec<u8>> {
    let size = from.read_i32().await.ok()?;
    let mut frame = vec![0; usize::try_from(size).ok()?];
    from.read_exact(&mut frame).await.ok()?;
    Some(frame)
}

async fn write_frame(to: &mut OwnedWriteHalf, frame: &[u8]) -> Option<()> {
    to.write_i32(i32::try_from(frame.len()).ok()?).await.ok()?;
    to.write_all(frame).await.ok()
}

/// Client to broker: remembers which API and version each correlation id asked for.
async fn requests(
    mut client: OwnedReadHalf,
    mut broker: OwnedWriteHalf,
    pending: Arc<Mutex<HashMap<i32, (i16, i16)>>>,
) {
    while let Some(frame) = read_frame(&mut client).await {
        if frame.len() >= 8 {
            let api_key = i16::from_be_bytes([frame[0], frame[1]]);
            let api_version = i16::from_be_bytes([frame[2], frame[3]]);
            let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
            pending.lock().unwrap().insert(correlation_id, (api_key, api_version));
        }
        if write_frame(&mut broker, &frame).await.is_none() {
            return;
        }
    }
}

/// Broker to client: rewrites the broker addresses of Metadata and FindCoordinator responses to the proxy's.
async fn responses(
    mut broker: OwnedReadHalf,
    mut client: OwnedWriteHalf,
    pending: Arc<Mutex<HashMap<i32, (i16, i16)>>>,
    address: SocketAddr,
) {
    while let Some(frame) = read_frame(&mut broker).await {
        let correlation_id = frame.get(..4).map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        let request = correlation_id.and_then(|id| pending.lock().unwrap().remove(&id));
        let frame = match request {
            Some((api_key, version)) => rewrite(frame, api_key, version, address),
            None => frame,
        };
        if write_frame(&mut client, &frame).await.is_none() {
            return;
        }
    }
}

/// `frame` with every advertised broker address replaced by `address`; unchanged for other APIs or anything it
/// cannot read.
fn rewrite(frame: Vec<u8>, api_key: i16, version: i16, address: SocketAddr) -> Vec<u8> {
    let (flexible, brokers): (bool, BrokerFields) = match api_key {
        METADATA => (version >= 9, metadata_brokers),
        FIND_COORDINATOR => (version >= 3, coordinator),
        _ => return frame,
    };
    let mut rewriter = Rewriter { input: &frame, at: 4, output: frame[..4].to_vec(), address };
    let rewritten = (|| {
        if flexible {
            rewriter.copy_tagged_fields()?; // the response header's
        }
        brokers(&mut rewriter, flexible, version)?;
        rewriter.output.extend_from_slice(&rewriter.input[rewriter.at..]);
        Some(())
    })();
    match rewritten {
        Some(()) => rewriter.output,
        None => frame,
    }
}

/// Rewrites the broker fields at the start of a response body.
type BrokerFields = fn(&mut Rewriter<'_>, bool, i16) -> Option<()>;

fn metadata_brokers(r: &mut Rewriter<'_>, flexible: bool, version: i16) -> Option<()> {
    if version >= 3 {
        r.copy(4)?; // throttle_time_ms
    }
    let count =
        if flexible { r.copy_uvarint()?.checked_sub(1)? } else { u32::try_from(r.copy_i32()?).ok()? };
    for _ in 0..count {
        r.copy(4)?; // node_id
        r.replace_host_and_port(flexible)?;
        if version >= 1 {
            r.copy_string(flexible)?; // rack
        }
        if flexible {
            r.copy_tagged_fields()?;
        }
    }
    Some(())
}

fn coordinator(r: &mut Rewriter<'_>, flexible: bool, version: i16) -> Option<()> {
    if version >= 1 {
        r.copy(4)?; // throttle_time_ms
    }
    r.copy(2)?; // error_code
    if version >= 1 {
        r.copy_string(flexible)?; // error_message
    }
    r.copy(4)?; // node_id
    r.replace_host_and_port(flexible)
}

/// Copies a response field by field, replacing host and port where asked.
struct Rewriter<'a> {
    input: &'a [u8],
    at: usize,
    output: Vec<u8>,
    address: SocketAddr,
}

impl Rewriter<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let bytes = self.input.get(self.at..self.at + n)?;
        self.at += n;
        Some(bytes)
    }

    fn copy(&mut self, n: usize) -> Option<()> {
        let bytes = self.take(n)?.to_vec();
        self.output.extend_from_slice(&bytes);
        Some(())
    }

    fn copy_i32(&mut self) -> Option<i32> {
        let bytes = self.take(4)?;
        let value = i32::from_be_bytes(bytes.try_into().ok()?);
        self.output.extend_from_slice(&value.to_be_bytes());
        Some(value)
    }

    fn read_uvarint(&mut self) -> Option<u32> {
        let (mut value, mut shift) = (0_u32, 0);
        loop {
            let byte = *self.input.get(self.at)?;
            self.at += 1;
            value |= u32::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
            shift += 7;
            if shift > 28 {
                return None;
            }
        }
    }

    fn write_uvarint(&mut self, mut value: u32) {
        while value >= 0x80 {
            self.output.push((value as u8 & 0x7f) | 0x80);
            value >>= 7;
        }
        self.output.push(value as u8);
    }

    fn copy_uvarint(&mut self) -> Option<u32> {
        let value = self.read_uvarint()?;
        self.write_uvarint(value);
        Some(value)
    }

    /// A (nullable) string: int16 length, or in flexible versions an unsigned varint of length + 1.
    fn string_len(&mut self, flexible: bool) -> Option<Option<usize>> {
        if flexible {
            let len = self.read_uvarint()?;
            Some(len.checked_sub(1).map(|len| len as usize))
        } else {
            let len = i16::from_be_bytes(self.take(2)?.try_into().ok()?);
            Some(usize::try_from(len).ok())
        }
    }

    fn write_string(&mut self, value: &str, flexible: bool) {
        if flexible {
            self.write_uvarint(value.len() as u32 + 1);
        } else {
            self.output.extend_from_slice(&(value.len() as i16).to_be_bytes());
        }
        self.output.extend_from_slice(value.as_bytes());
    }

    fn copy_string(&mut self, flexible: bool) -> Option<()> {
        let start = self.at;
        let len = self.string_len(flexible)?;
        self.take(len.unwrap_or(0))?;
        self.output.extend_from_slice(&self.input[start..self.at]);
        Some(())
    }

    fn replace_host_and_port(&mut self, flexible: bool) -> Option<()> {
        let len = self.string_len(flexible)??;
        self.take(len)?;
        self.take(4)?;
        self.write_string(&self.address.ip().to_string(), flexible);
        self.output.extend_from_slice(&i32::from(self.address.port()).to_be_bytes());
        Some(())
    }

    fn copy_tagged_fields(&mut self) -> Option<()> {
        let count = self.copy_uvarint()?;
        for _ in 0..count {
            self.copy_uvarint()?; // tag
            let size = self.copy_uvarint()?;
            self.copy(size as usize)?;
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxy_address() -> SocketAddr {
        "127.0.0.1:4242".parse().unwrap()
    }

    #[test]
    fn a_flexible_metadata_response_advertises_the_proxy() {
        // correlation id 7, header tags, throttle, 1 broker {node 1, "127.0.0.1", 39999, rack null, tags}, rest.
        let mut frame = vec![0, 0, 0, 7, 0, 0, 0, 0, 0, 2, 0, 0, 0, 1, 10];
        frame.extend_from_slice(b"127.0.0.1");
        frame.extend_from_slice(&39_999_i32.to_be_bytes());
        frame.extend_from_slice(&[0, 0, 0xAB, 0xCD]);

        let rewritten = rewrite(frame, METADATA, 12, proxy_address());

        let port_at = 15 + 9;
        assert_eq!(&rewritten[15..port_at], b"127.0.0.1");
        assert_eq!(i32::from_be_bytes(rewritten[port_at..port_at + 4].try_into().unwrap()), 4242);
        assert_eq!(&rewritten[port_at + 4..], [0, 0, 0xAB, 0xCD], "the rest is untouched");
    }

    #[test]
    fn an_old_find_coordinator_response_advertises_the_proxy_even_with_another_host_name() {
        // v0: correlation id, error_code, node_id, host "localhost", port.
        let mut frame = vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 9];
        frame.extend_from_slice(b"localhost");
        frame.extend_from_slice(&9092_i32.to_be_bytes());

        let rewritten = rewrite(frame, FIND_COORDINATOR, 0, proxy_address());

        let mut expected = vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 9];
        expected.extend_from_slice(b"127.0.0.1");
        expected.extend_from_slice(&4242_i32.to_be_bytes());
        assert_eq!(rewritten, expected);
    }

    #[test]
    fn other_responses_pass_unchanged() {
        let frame = vec![0, 0, 0, 1, 1, 2, 3];

        assert_eq!(rewrite(frame.clone(), 0, 9, proxy_address()), frame);
    }
}

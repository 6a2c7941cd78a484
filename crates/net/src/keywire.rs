//! The dealer's `KeyStream.Pull` method written by hand, so that a key
//! bundle goes from its encoder to the socket without a copy.
//!
//! tonic's generated server encodes every response message into its own
//! buffer: for a key chunk that is a copy of the whole bundle (up to
//! hundreds of megabytes) into freshly allocated memory, which `perf` put at
//! 6-7 % of all the CPU of `scripts/zoo-across-processes.sh resnet20 32
//! small-key 24` (the copy, the kernel clearing the new pages, and wiping),
//! and it kept a second, unwiped copy of the bundle alive while it was sent.
//! Here the response body yields each message as two frames: the gRPC
//! message prefix and protobuf field headers ([`chunk_head`], a few bytes),
//! then the bundle's bytes themselves, a slice of the encoder's
//! [`Bytes`] (HTTP/2 sends it without copying it; it is wiped when the
//! last slice is dropped). The wire format is unchanged: the party's tonic
//! client decodes the messages as before, and a test checks the bytes
//! against prost's encoding.
//!
//! Requests are decoded by tonic's own [`Streaming`] (with prost's codec),
//! errors are tonic's [`Status`] (a trailers-only response before the
//! stream starts, trailers after it), and any other method is answered
//! `UNIMPLEMENTED`, as the generated server does.

use ariann_proto::v1::{KeyChunk, PullMessage};
use bytes::{BufMut, Bytes, BytesMut};
use http_body::Frame;
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::mpsc;
use tonic::codec::{Codec, Streaming};
use tonic::codegen::{BoxFuture, Service, http};
use tonic::{Code, Status};

/// Path of the key stream method.
pub(crate) const PULL_PATH: &str = "/ariann.v1.KeyStream/Pull";
/// gRPC service name (`package.Service`).
const SERVICE_NAME: &str = "ariann.v1.KeyStream";
/// Field numbers in `keys.proto`: `KeyChunk.chunk`, `KeyBundleChunk`'s
/// `bundle`, `chunk`, `last`, `payload`.
const KEY_CHUNK_CHUNK: u32 = 2;
const CHUNK_BUNDLE: u32 = 1;
const CHUNK_INDEX: u32 = 2;
const CHUNK_LAST: u32 = 3;
const CHUNK_PAYLOAD: u32 = 4;

/// One response message as frames: its head, then (a key chunk's) payload.
pub(crate) struct Wire {
    head: Bytes,
    payload: Bytes,
}

/// What the dealer's pump queues for a party: a message, or the status
/// that ends the call.
pub(crate) type Out = Result<Wire, Status>;

/// The gRPC message prefix (uncompressed, big-endian length).
fn prefix(out: &mut BytesMut, len: usize) {
    out.put_u8(0);
    out.put_u32(len as u32);
}

/// A whole message (the stream header) in one frame.
pub(crate) fn message(msg: &KeyChunk) -> Wire {
    let len = msg.encoded_len();
    let mut out = BytesMut::with_capacity(5 + len);
    prefix(&mut out, len);
    // Cannot fail: the buffer grows as needed.
    let _ = msg.encode(&mut out);
    Wire {
        head: out.freeze(),
        payload: Bytes::new(),
    }
}

/// `KeyChunk { chunk: KeyBundleChunk { bundle, chunk, last, payload } }`,
/// exactly as prost encodes it (proto3: zero fields left out), with the
/// payload not copied (at most `MAX_KEY_CHUNK`, 1 GiB: far below the
/// 4 GiB a gRPC message length can say).
pub(crate) fn chunk_head(bundle: u64, chunk: u32, last: bool, payload: Bytes) -> Wire {
    let p = payload.len();
    debug_assert!(p <= crate::keys::MAX_KEY_CHUNK);
    let mut fields = 0usize;
    if bundle != 0 {
        fields += 1 + encoded_len_varint(bundle);
    }
    if chunk != 0 {
        fields += 1 + encoded_len_varint(u64::from(chunk));
    }
    if last {
        fields += 2;
    }
    let inner = fields
        + if p > 0 {
            1 + encoded_len_varint(p as u64) + p
        } else {
            0
        };
    let len = 1 + encoded_len_varint(inner as u64) + inner;
    let mut out = BytesMut::with_capacity(5 + len - p);
    prefix(&mut out, len);
    encode_key(KEY_CHUNK_CHUNK, WireType::LengthDelimited, &mut out);
    encode_varint(inner as u64, &mut out);
    if bundle != 0 {
        encode_key(CHUNK_BUNDLE, WireType::Varint, &mut out);
        encode_varint(bundle, &mut out);
    }
    if chunk != 0 {
        encode_key(CHUNK_INDEX, WireType::Varint, &mut out);
        encode_varint(u64::from(chunk), &mut out);
    }
    if last {
        encode_key(CHUNK_LAST, WireType::Varint, &mut out);
        encode_varint(1, &mut out);
    }
    if p > 0 {
        encode_key(CHUNK_PAYLOAD, WireType::LengthDelimited, &mut out);
        encode_varint(p as u64, &mut out);
    }
    Wire {
        head: out.freeze(),
        payload,
    }
}

/// The response body: the queued messages' frames, then the trailers.
struct WireBody {
    rx: mpsc::Receiver<Out>,
    payload: Option<Bytes>,
    done: bool,
}

fn trailers(status: &Status) -> http::HeaderMap {
    let mut t = http::HeaderMap::new();
    if status.add_header(&mut t).is_err() {
        t.clear();
        let _ = Status::internal("bad status").add_header(&mut t);
    }
    t
}

impl http_body::Body for WireBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        if let Some(p) = this.payload.take() {
            return Poll::Ready(Some(Ok(Frame::data(p))));
        }
        if this.done {
            return Poll::Ready(None);
        }
        match this.rx.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(w))) => {
                if !w.payload.is_empty() {
                    this.payload = Some(w.payload);
                }
                Poll::Ready(Some(Ok(Frame::data(w.head))))
            }
            Poll::Ready(Some(Err(s))) => {
                this.done = true;
                Poll::Ready(Some(Ok(Frame::trailers(trailers(&s)))))
            }
            Poll::Ready(None) => {
                this.done = true;
                Poll::Ready(Some(Ok(Frame::trailers(trailers(&Status::new(
                    Code::Ok,
                    "",
                ))))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.payload.is_none()
    }
}

/// What answers a party's call: checks its request and starts its stream.
pub(crate) trait Puller: Send + Sync + 'static {
    /// The party's first message is read from `inbound`; `leaf` is its TLS
    /// certificate. Returns the queue of its messages.
    fn start(
        self: Arc<Self>,
        leaf: Option<Vec<u8>>,
        inbound: Streaming<PullMessage>,
    ) -> BoxFuture<mpsc::Receiver<Out>, Status>;
}

/// The `KeyStream` service for tonic's router.
pub(crate) struct RawKeyStream<P> {
    inner: Arc<P>,
    max_request: usize,
}

impl<P> Clone for RawKeyStream<P> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            max_request: self.max_request,
        }
    }
}

impl<P: Puller> RawKeyStream<P> {
    /// `max_request`: largest request message accepted.
    pub(crate) fn new(inner: P, max_request: usize) -> Self {
        Self {
            inner: Arc::new(inner),
            max_request,
        }
    }
}

impl<P> tonic::server::NamedService for RawKeyStream<P> {
    const NAME: &'static str = SERVICE_NAME;
}

impl<P: Puller> Service<http::Request<tonic::body::Body>> for RawKeyStream<P> {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let inner = Arc::clone(&self.inner);
        let max = self.max_request;
        Box::pin(async move {
            if req.uri().path() != PULL_PATH {
                return Ok(Status::unimplemented("").into_http());
            }
            let req = tonic::Request::from_http(req);
            let leaf = req
                .peer_certs()
                .and_then(|c| c.first().map(|c| c.as_ref().to_vec()));
            let (_, _, body) = req.into_parts();
            let mut codec = tonic_prost::ProstCodec::<KeyChunk, PullMessage>::default();
            let inbound = Streaming::new_request(codec.decoder(), body, None, Some(max));
            match inner.start(leaf, inbound).await {
                Ok(rx) => {
                    let body = WireBody {
                        rx,
                        payload: None,
                        done: false,
                    };
                    let mut res = http::Response::new(tonic::body::Body::new(body));
                    res.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        tonic::metadata::GRPC_CONTENT_TYPE,
                    );
                    Ok(res)
                }
                Err(s) => Ok(s.into_http()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ariann_proto::v1::KeyBundleChunk;
    use ariann_proto::v1::key_chunk::Body;

    fn framed(w: &Wire) -> Vec<u8> {
        [&w.head[..], &w.payload[..]].concat()
    }

    fn prost_framed(msg: &KeyChunk) -> Vec<u8> {
        let body = msg.encode_to_vec();
        let mut out = vec![0u8];
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// The hand-made chunk messages are byte for byte prost's, for zero and
    /// non-zero fields and payloads whose length varint takes 1 to 4 bytes.
    #[test]
    fn chunk_messages_equal_prost_encoding() {
        for bundle in [0u64, 1, 300, u64::MAX] {
            for chunk in [0u32, 5, 70_000] {
                for last in [false, true] {
                    for p in [0usize, 1, 127, 128, 20_000, 3 << 20] {
                        let payload: Bytes = (0..p).map(|i| (i * 7 + 3) as u8).collect();
                        let w = chunk_head(bundle, chunk, last, payload.clone());
                        let msg = KeyChunk {
                            body: Some(Body::Chunk(KeyBundleChunk {
                                bundle,
                                chunk,
                                last,
                                payload,
                            })),
                        };
                        assert_eq!(
                            framed(&w),
                            prost_framed(&msg),
                            "bundle {bundle} chunk {chunk} last {last} payload {p}"
                        );
                        // The payload travels as its own frame, not copied.
                        assert!(w.head.len() <= 5 + 32);
                    }
                }
            }
        }
        let header = KeyChunk { body: None };
        assert_eq!(framed(&message(&header)), prost_framed(&header));
    }
}

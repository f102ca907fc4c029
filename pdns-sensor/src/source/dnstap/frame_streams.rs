//! Frame Streams, the framing dnstap travels in: frames cut from a byte
//! stream, control frames checked against the handshake, replies made.
//!
//! The protocol (from the fstrm library's documentation, the reference the
//! emitters follow): every frame starts with a 4-byte big-endian length. A
//! data frame is that many bytes of payload. A length of zero is an escape:
//! a control frame follows, as its own 4-byte length and then a 4-byte
//! control type and fields (field type 1 is a content type, with a 4-byte
//! length and its bytes).
//!
//! A bidirectional stream (a socket whose sender waits for answers) opens
//! with the sender's READY listing the content types it can send; the
//! receiver answers ACCEPT with the one it takes; the sender says START and
//! sends data; STOP ends it and the receiver answers FINISH. A
//! unidirectional stream (a file, or a sender configured so) is START,
//! data, STOP. [`Session`] accepts either form on a socket, as the first
//! control frame tells which (NLnetLabs/unbound#245 was a collector that
//! insisted on one).
//!
//! Nothing here does I/O: [`FrameDecoder`] cuts frames from a buffer the
//! caller fills, and [`Session`] returns the bytes to answer with. The
//! socket loop, the file reader and the fuzz targets drive the same code.
//!
//! Bounds: a data frame longer than the configured limit is not buffered
//! but skipped as it arrives (counted; the stream goes on); a control frame
//! longer than [`MAX_CONTROL_LEN`] ends the stream (nothing legitimate
//! sends one: fstrm's own limit is 512 bytes).

use bytes::{Buf, Bytes, BytesMut};

/// The only content type accepted: dnstap's protobuf messages.
pub const CONTENT_TYPE: &[u8] = b"protobuf:dnstap.Dnstap";

/// Longest control frame accepted. fstrm limits them to 512 bytes; a few
/// content types of reasonable length fit with room to spare.
pub const MAX_CONTROL_LEN: usize = 4096;

/// Default limit of a data frame: 1 MiB. A DNS message over TCP reaches
/// 64 KiB and dnstap adds the query as well as the response and their
/// fields, so a 64 KiB limit rejected valid frames in a peer collector.
pub const DEFAULT_MAX_FRAME: usize = 1 << 20;

const FIELD_CONTENT_TYPE: u32 = 1;

/// Control frame types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlType {
    Accept,
    Start,
    Stop,
    Ready,
    Finish,
}

impl ControlType {
    fn from_u32(v: u32) -> Option<ControlType> {
        Some(match v {
            1 => ControlType::Accept,
            2 => ControlType::Start,
            3 => ControlType::Stop,
            4 => ControlType::Ready,
            5 => ControlType::Finish,
            _ => return None,
        })
    }

    fn to_u32(self) -> u32 {
        match self {
            ControlType::Accept => 1,
            ControlType::Start => 2,
            ControlType::Stop => 3,
            ControlType::Ready => 4,
            ControlType::Finish => 5,
        }
    }
}

/// A parsed control frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Control {
    pub kind: ControlType,
    pub content_types: Vec<Bytes>,
}

/// What [`FrameDecoder::next`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A data frame's payload.
    Data(Bytes),
    Control(Control),
    /// A data frame over the limit: its length; its bytes are being
    /// skipped as they arrive.
    TooLarge(u64),
}

/// Why a stream was ended.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("control frame of {0} bytes (limit {MAX_CONTROL_LEN})")]
    ControlTooLarge(usize),
    #[error("malformed control frame")]
    BadControl,
    #[error("unknown control frame type {0}")]
    UnknownControl(u32),
    #[error("content type {0:?} is not protobuf:dnstap.Dnstap")]
    ContentType(String),
    #[error("{0:?} frame where {1} was expected")]
    Unexpected(ControlType, &'static str),
    #[error("data frame before START (not a Frame Streams sender?)")]
    DataBeforeStart,
    #[error("frame after STOP")]
    AfterStop,
}

impl ProtocolError {
    /// Whether the error happened before the stream was accepted: a
    /// failed handshake, rather than a stream that broke later.
    pub fn is_handshake(&self) -> bool {
        !matches!(self, ProtocolError::AfterStop)
    }
}

/// Cuts frames from a buffer (see the module docs for the bounds).
#[derive(Debug)]
pub struct FrameDecoder {
    max_frame: usize,
    /// Bytes of an oversized frame still to skip.
    skipping: u64,
}

impl FrameDecoder {
    pub fn new(max_frame: usize) -> FrameDecoder {
        FrameDecoder {
            max_frame,
            skipping: 0,
        }
    }

    /// The next whole frame at the start of `buf`, removed from it, or
    /// `None` until more bytes arrive.
    pub fn next(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        self.skip(buf);
        if self.skipping > 0 || buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len == 0 {
            return self.control(buf);
        }
        if len > self.max_frame {
            buf.advance(4);
            self.skipping = len as u64;
            // The caller counts it; what is buffered of it goes now, the
            // rest as it arrives.
            self.skip(buf);
            return Ok(Some(Frame::TooLarge(len as u64)));
        }
        if buf.len() < 4 + len {
            // Room for the whole frame, so the next reads complete it.
            buf.reserve(4 + len - buf.len());
            return Ok(None);
        }
        buf.advance(4);
        Ok(Some(Frame::Data(buf.split_to(len).freeze())))
    }

    /// Drops what is buffered of an oversized frame.
    fn skip(&mut self, buf: &mut BytesMut) {
        let n = (buf.len() as u64).min(self.skipping);
        buf.advance(n as usize);
        self.skipping -= n;
    }

    fn control(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        if buf.len() < 8 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) as usize;
        if len > MAX_CONTROL_LEN {
            return Err(ProtocolError::ControlTooLarge(len));
        }
        if buf.len() < 8 + len {
            return Ok(None);
        }
        buf.advance(8);
        let body = buf.split_to(len).freeze();
        parse_control(body).map(|c| Some(Frame::Control(c)))
    }

    /// Whether a frame is partly read (at the end of a stream: that frame
    /// is lost).
    pub fn mid_frame(&self, buf: &BytesMut) -> bool {
        self.skipping > 0 || !buf.is_empty()
    }
}

fn parse_control(mut body: Bytes) -> Result<Control, ProtocolError> {
    if body.len() < 4 {
        return Err(ProtocolError::BadControl);
    }
    let kind = body.get_u32();
    let kind = ControlType::from_u32(kind).ok_or(ProtocolError::UnknownControl(kind))?;
    let mut content_types = Vec::new();
    while !body.is_empty() {
        if body.len() < 8 {
            return Err(ProtocolError::BadControl);
        }
        let field = body.get_u32();
        let len = body.get_u32() as usize;
        if len > body.len() {
            return Err(ProtocolError::BadControl);
        }
        let value = body.split_to(len);
        if field == FIELD_CONTENT_TYPE {
            content_types.push(value);
        }
        // Other field types are not defined; skipped.
    }
    Ok(Control {
        kind,
        content_types,
    })
}

/// A control frame as bytes on the wire.
pub fn encode_control(kind: ControlType, content_type: Option<&[u8]>) -> Vec<u8> {
    let fields = content_type.map_or(0, |c| 8 + c.len());
    let mut out = Vec::with_capacity(12 + fields);
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&((4 + fields) as u32).to_be_bytes());
    out.extend_from_slice(&kind.to_u32().to_be_bytes());
    if let Some(c) = content_type {
        out.extend_from_slice(&FIELD_CONTENT_TYPE.to_be_bytes());
        out.extend_from_slice(&(c.len() as u32).to_be_bytes());
        out.extend_from_slice(c);
    }
    out
}

/// Appends a data frame holding `payload`.
pub fn encode_data(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
}

/// Where a stream is in its handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Nothing yet: READY (bidirectional) or START (unidirectional).
    Opening,
    /// READY answered with ACCEPT; START next.
    Accepted,
    /// START seen: data flows.
    Started { bidirectional: bool },
    /// STOP seen (and FINISH sent if bidirectional).
    Stopped,
}

/// The receiver's side of the handshake.
#[derive(Debug)]
pub struct Session {
    state: State,
}

/// What the session says about a frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Go on (send `reply` first if it is not empty).
    Continue,
    /// The sender stopped; close the stream after sending the reply.
    Finished,
}

impl Default for Session {
    fn default() -> Self {
        Session::new()
    }
}

impl Session {
    pub fn new() -> Session {
        Session {
            state: State::Opening,
        }
    }

    /// Whether data frames may come now.
    pub fn started(&self) -> bool {
        matches!(self.state, State::Started { .. })
    }

    /// Whether the sender stopped cleanly.
    pub fn stopped(&self) -> bool {
        self.state == State::Stopped
    }

    /// A control frame: checked against the handshake; the bytes to answer
    /// with are appended to `reply`.
    pub fn control(
        &mut self,
        control: &Control,
        reply: &mut Vec<u8>,
    ) -> Result<Step, ProtocolError> {
        use ControlType::*;
        match (self.state, control.kind) {
            (State::Opening, Ready) => {
                // An empty list means "any", as in fstrm.
                if !control.content_types.is_empty()
                    && !control.content_types.iter().any(|c| c == CONTENT_TYPE)
                {
                    return Err(content_type_error(&control.content_types));
                }
                reply.extend(encode_control(Accept, Some(CONTENT_TYPE)));
                self.state = State::Accepted;
                Ok(Step::Continue)
            }
            (State::Opening | State::Accepted, Start) => {
                if control.content_types.len() > 1
                    || control
                        .content_types
                        .first()
                        .is_some_and(|c| c != CONTENT_TYPE)
                {
                    return Err(content_type_error(&control.content_types));
                }
                self.state = State::Started {
                    bidirectional: self.state == State::Accepted,
                };
                Ok(Step::Continue)
            }
            (State::Started { bidirectional }, Stop) => {
                if bidirectional {
                    reply.extend(encode_control(Finish, None));
                }
                self.state = State::Stopped;
                Ok(Step::Finished)
            }
            (State::Stopped, _) => Err(ProtocolError::AfterStop),
            (State::Opening, kind) => Err(ProtocolError::Unexpected(kind, "READY or START")),
            (State::Accepted, kind) => Err(ProtocolError::Unexpected(kind, "START")),
            (State::Started { .. }, kind) => Err(ProtocolError::Unexpected(kind, "data or STOP")),
        }
    }

    /// A data frame may come now, or it is a protocol error.
    pub fn data(&self) -> Result<(), ProtocolError> {
        match self.state {
            State::Started { .. } => Ok(()),
            State::Stopped => Err(ProtocolError::AfterStop),
            _ => Err(ProtocolError::DataBeforeStart),
        }
    }
}

fn content_type_error(types: &[Bytes]) -> ProtocolError {
    let shown: Vec<String> = types
        .iter()
        .map(|t| String::from_utf8_lossy(&t[..t.len().min(64)]).into_owned())
        .collect();
    ProtocolError::ContentType(shown.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(decoder: &mut FrameDecoder, buf: &mut BytesMut) -> Vec<Frame> {
        let mut out = Vec::new();
        while let Some(f) = decoder.next(buf).unwrap() {
            out.push(f);
        }
        out
    }

    #[test]
    fn bidirectional_handshake() {
        let mut session = Session::new();
        let mut reply = Vec::new();
        let ready = Control {
            kind: ControlType::Ready,
            content_types: vec![
                Bytes::from_static(b"other"),
                Bytes::from_static(CONTENT_TYPE),
            ],
        };
        assert_eq!(session.control(&ready, &mut reply), Ok(Step::Continue));
        assert_eq!(
            reply,
            encode_control(ControlType::Accept, Some(CONTENT_TYPE))
        );
        assert_eq!(session.data(), Err(ProtocolError::DataBeforeStart));
        reply.clear();
        let start = Control {
            kind: ControlType::Start,
            content_types: vec![Bytes::from_static(CONTENT_TYPE)],
        };
        assert_eq!(session.control(&start, &mut reply), Ok(Step::Continue));
        assert!(reply.is_empty());
        assert_eq!(session.data(), Ok(()));
        let stop = Control {
            kind: ControlType::Stop,
            content_types: vec![],
        };
        assert_eq!(session.control(&stop, &mut reply), Ok(Step::Finished));
        assert_eq!(reply, encode_control(ControlType::Finish, None));
        assert_eq!(session.data(), Err(ProtocolError::AfterStop));
    }

    #[test]
    fn unidirectional_sends_no_finish() {
        let mut session = Session::new();
        let mut reply = Vec::new();
        let start = Control {
            kind: ControlType::Start,
            content_types: vec![],
        };
        session.control(&start, &mut reply).unwrap();
        let stop = Control {
            kind: ControlType::Stop,
            content_types: vec![],
        };
        assert_eq!(session.control(&stop, &mut reply), Ok(Step::Finished));
        assert!(reply.is_empty());
    }

    #[test]
    fn wrong_content_type_is_refused() {
        let mut session = Session::new();
        let ready = Control {
            kind: ControlType::Ready,
            content_types: vec![Bytes::from_static(b"protobuf:other.Thing")],
        };
        let err = session.control(&ready, &mut Vec::new()).unwrap_err();
        assert!(matches!(err, ProtocolError::ContentType(ref t) if t == "protobuf:other.Thing"));
        assert!(err.is_handshake());
    }

    #[test]
    fn frames_cut_at_any_boundary() {
        let mut wire = encode_control(ControlType::Start, Some(CONTENT_TYPE));
        for payload in [&b"one"[..], &[7u8; 1000], b"x"] {
            encode_data(payload, &mut wire);
        }
        wire.extend(encode_control(ControlType::Stop, None));
        // Fed one byte at a time and all at once: the same frames.
        let mut whole = BytesMut::from(&wire[..]);
        let expected = frames(&mut FrameDecoder::new(DEFAULT_MAX_FRAME), &mut whole);
        assert_eq!(expected.len(), 5);
        let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in &wire {
            buf.extend_from_slice(&[*b]);
            got.extend(frames(&mut decoder, &mut buf));
        }
        assert_eq!(got, expected);
        assert!(!decoder.mid_frame(&buf));
    }

    #[test]
    fn oversized_frame_is_skipped_and_the_stream_goes_on() {
        let mut wire = Vec::new();
        encode_data(&[1u8; 300], &mut wire);
        encode_data(b"after", &mut wire);
        let mut decoder = FrameDecoder::new(100);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for chunk in wire.chunks(7) {
            buf.extend_from_slice(chunk);
            got.extend(frames(&mut decoder, &mut buf));
        }
        assert_eq!(
            got,
            vec![
                Frame::TooLarge(300),
                Frame::Data(Bytes::from_static(b"after"))
            ]
        );
    }

    #[test]
    fn hostile_control_frames() {
        let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME);
        let mut huge = BytesMut::from(&[0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff][..]);
        assert_eq!(
            decoder.next(&mut huge),
            Err(ProtocolError::ControlTooLarge(0x7fff_ffff))
        );
        // A field whose length runs past the frame.
        let mut bad =
            BytesMut::from(&[0, 0, 0, 0, 0, 0, 0, 12, 0, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0, 9][..]);
        assert_eq!(decoder.next(&mut bad), Err(ProtocolError::BadControl));
        let mut unknown = BytesMut::from(&[0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 9][..]);
        assert_eq!(
            decoder.next(&mut unknown),
            Err(ProtocolError::UnknownControl(9))
        );
    }

    #[test]
    fn garbage_first_is_not_a_handshake() {
        // An HTTP request pointed at the socket: a "data frame" of
        // 0x47455420 bytes, skipped as too large — and the session refuses
        // data before START, which ends the connection.
        let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME);
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\n\r\n"[..]);
        assert_eq!(
            decoder.next(&mut buf),
            Ok(Some(Frame::TooLarge(0x4745_5420)))
        );
        assert_eq!(Session::new().data(), Err(ProtocolError::DataBeforeStart));
    }
}

//! One Frame Streams stream, read: frames cut, the handshake followed, each
//! dnstap message decoded and judged, everything counted.
//!
//! A [`Receiver`] is fed whatever bytes arrived and does no I/O itself, so
//! the socket connections, the file reader and the fuzz targets share it.

use bytes::{Bytes, BytesMut};

use super::frame_streams::{Frame, FrameDecoder, ProtocolError, Session, Step};
use super::message::{self, Discard, Response, Selection, TYPE_SLOTS};

/// Identities counted separately per publication (a sender uses one; a
/// hostile one cycling through many is lumped together).
const IDENTITIES_PER_PUBLISH: usize = 8;

/// Counters of dnstap input, per stream until published, then summed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnstapStats {
    /// Data frames read (whatever became of them).
    pub frames: u64,
    /// Bytes of data frames.
    pub bytes: u64,
    /// Responses handed to the pipeline.
    pub recorded: u64,
    /// Decoded messages by dnstap type (see [`message::type_label`]).
    pub types: [u64; TYPE_SLOTS],
    /// Frames not recorded, by [`Discard`] reason.
    pub discarded: [u64; Discard::ALL.len()],
    /// Data frames per sender identity (`None`: none given).
    pub identities: Vec<(Option<Bytes>, u64)>,
}

impl Default for DnstapStats {
    fn default() -> Self {
        DnstapStats {
            frames: 0,
            bytes: 0,
            recorded: 0,
            types: [0; TYPE_SLOTS],
            discarded: [0; Discard::ALL.len()],
            identities: Vec::new(),
        }
    }
}

impl DnstapStats {
    /// Counts one discarded frame.
    pub fn discard(&mut self, why: Discard) {
        self.discarded[why as usize] += 1;
    }

    pub fn discarded(&self, why: Discard) -> u64 {
        self.discarded[why as usize]
    }

    /// Adds another's counts.
    pub fn add(&mut self, other: &DnstapStats) {
        self.frames += other.frames;
        self.bytes += other.bytes;
        self.recorded += other.recorded;
        for (a, b) in self.types.iter_mut().zip(&other.types) {
            *a += b;
        }
        for (a, b) in self.discarded.iter_mut().zip(&other.discarded) {
            *a += b;
        }
        for (identity, n) in &other.identities {
            self.count_identity(identity.as_ref(), *n);
        }
    }

    /// Takes the counts, leaving zeros.
    pub fn take(&mut self) -> DnstapStats {
        std::mem::take(self)
    }

    pub fn is_empty(&self) -> bool {
        self.frames == 0 && self.discarded.iter().all(|n| *n == 0)
    }

    fn count_identity(&mut self, identity: Option<&Bytes>, n: u64) {
        if let Some(slot) = self
            .identities
            .iter_mut()
            .find(|(i, _)| i.as_ref() == identity)
        {
            slot.1 += n;
        } else if self.identities.len() < IDENTITIES_PER_PUBLISH {
            self.identities.push((identity.cloned(), n));
        } else {
            // Lumped with the last slot's sender: counted, not itemised.
            let last = self.identities.len() - 1;
            self.identities[last].1 += n;
        }
    }
}

/// How a stream ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// STOP (answered with FINISH on a bidirectional stream).
    Finished,
    /// Closed between frames without STOP (senders do this on restart).
    Closed,
    /// Closed in the middle of a frame: that frame is lost (counted).
    Truncated,
    /// Ended for breaking the protocol.
    Protocol(ProtocolError),
}

/// Reads one stream (see the module docs).
#[derive(Debug)]
pub struct Receiver {
    decoder: FrameDecoder,
    session: Session,
    selection: Selection,
    pub stats: DnstapStats,
}

impl Receiver {
    pub fn new(max_frame: usize, selection: Selection) -> Receiver {
        Receiver {
            decoder: FrameDecoder::new(max_frame),
            session: Session::new(),
            selection,
            stats: DnstapStats::default(),
        }
    }

    /// Whether the handshake is done (data may flow).
    pub fn started(&self) -> bool {
        self.session.started()
    }

    /// Takes every whole frame from `buf`: responses to record are pushed
    /// to `out`, bytes to answer the sender with appended to `reply`.
    /// `Ok(Some(Ending::Finished))` once the sender has stopped (bytes after
    /// its STOP are ignored); an error ends the stream.
    pub fn process(
        &mut self,
        buf: &mut BytesMut,
        reply: &mut Vec<u8>,
        out: &mut Vec<Response>,
    ) -> Result<Option<Ending>, ProtocolError> {
        while let Some(frame) = self.decoder.next(buf)? {
            match frame {
                Frame::Data(data) => {
                    self.session.data()?;
                    self.data(data, out);
                }
                Frame::TooLarge(len) => {
                    self.session.data()?;
                    self.stats.frames += 1;
                    self.stats.bytes += len;
                    self.stats.discard(Discard::FrameTooLarge);
                }
                Frame::Control(control) => {
                    if self.session.control(&control, reply)? == Step::Finished {
                        return Ok(Some(Ending::Finished));
                    }
                }
            }
        }
        Ok(None)
    }

    fn data(&mut self, data: Bytes, out: &mut Vec<Response>) {
        self.stats.frames += 1;
        self.stats.bytes += data.len() as u64;
        let decoded = message::decode(data, self.selection);
        self.stats.count_identity(decoded.identity.as_ref(), 1);
        if let Some(slot) = decoded.type_slot {
            self.stats.types[slot] += 1;
        }
        match decoded.verdict {
            Ok(response) => {
                self.stats.recorded += 1;
                out.push(response);
            }
            Err(why) => self.stats.discard(why),
        }
    }

    /// The sender closed the stream with `buf` left unread: how it ended
    /// (a partial frame is counted as lost).
    pub fn end(&mut self, buf: &BytesMut) -> Ending {
        if self.session.stopped() {
            Ending::Finished
        } else if self.decoder.mid_frame(buf) {
            if self.session.started() {
                self.stats.discard(Discard::TruncatedFrame);
            }
            Ending::Truncated
        } else {
            Ending::Closed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::frame_streams::{CONTENT_TYPE, ControlType, encode_control, encode_data};
    use super::super::proto;
    use super::*;
    use prost::Message as _;

    fn dnstap(kind: proto::message::Type, identity: &[u8]) -> Vec<u8> {
        proto::Dnstap {
            identity: Some(Bytes::copy_from_slice(identity)),
            r#type: proto::dnstap::Type::Message as i32,
            message: Some(proto::Message {
                r#type: kind as i32,
                response_time_sec: Some(1),
                response_message: Some(Bytes::from_static(b"\0\0\x80\0\0\0\0\0\0\0\0\0")),
                ..Default::default()
            }),
            ..Default::default()
        }
        .encode_to_vec()
    }

    #[test]
    fn a_stream_counted_frame_by_frame() {
        use proto::message::Type::*;
        let mut wire = encode_control(ControlType::Ready, Some(CONTENT_TYPE));
        wire.extend(encode_control(ControlType::Start, Some(CONTENT_TYPE)));
        for (kind, id) in [
            (ResolverResponse, &b"a"[..]),
            (ResolverQuery, b"a"),
            (ClientResponse, b"b"),
        ] {
            encode_data(&dnstap(kind, id), &mut wire);
        }
        encode_data(b"not protobuf \xff", &mut wire);
        wire.extend(encode_control(ControlType::Stop, None));
        wire.extend(b"ignored after STOP");

        let mut rx = Receiver::new(1 << 20, Selection::default());
        let (mut reply, mut out) = (Vec::new(), Vec::new());
        let mut buf = BytesMut::from(&wire[..]);
        let ending = rx.process(&mut buf, &mut reply, &mut out).unwrap();
        assert_eq!(ending, Some(Ending::Finished));
        let mut expected_reply = encode_control(ControlType::Accept, Some(CONTENT_TYPE));
        expected_reply.extend(encode_control(ControlType::Finish, None));
        assert_eq!(reply, expected_reply);
        assert_eq!(out.len(), 1);
        let s = &rx.stats;
        assert_eq!((s.frames, s.recorded), (4, 1));
        assert_eq!(s.discarded(Discard::Query), 1);
        assert_eq!(s.discarded(Discard::TypeNotSelected), 1);
        assert_eq!(s.discarded(Discard::Protobuf), 1);
        assert_eq!(
            s.identities,
            vec![
                (Some(Bytes::from_static(b"a")), 2),
                (Some(Bytes::from_static(b"b")), 1),
                (None, 1)
            ]
        );
    }

    #[test]
    fn a_sender_gone_mid_frame_loses_that_frame_only() {
        let mut wire = encode_control(ControlType::Start, None);
        let one = dnstap(proto::message::Type::AuthResponse, b"x");
        encode_data(&one, &mut wire);
        encode_data(&one, &mut wire);
        wire.truncate(wire.len() - 3);
        let mut rx = Receiver::new(1 << 20, Selection::default());
        let (mut reply, mut out) = (Vec::new(), Vec::new());
        let mut buf = BytesMut::from(&wire[..]);
        assert_eq!(rx.process(&mut buf, &mut reply, &mut out), Ok(None));
        assert_eq!(rx.end(&buf), Ending::Truncated);
        assert_eq!(out.len(), 1);
        assert_eq!(rx.stats.discarded(Discard::TruncatedFrame), 1);
    }

    #[test]
    fn data_before_the_handshake_ends_the_stream() {
        let mut wire = Vec::new();
        encode_data(b"hello", &mut wire);
        let mut rx = Receiver::new(1 << 20, Selection::default());
        let mut buf = BytesMut::from(&wire[..]);
        assert_eq!(
            rx.process(&mut buf, &mut Vec::new(), &mut Vec::new()),
            Err(ProtocolError::DataBeforeStart)
        );
    }
}

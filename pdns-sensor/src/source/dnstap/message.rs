//! One dnstap frame: the protobuf decoded, and the decision whether its DNS
//! response goes into the store.
//!
//! What is kept, and why (see the README's dnstap section for the
//! resolver settings that send it):
//! - `RESOLVER_RESPONSE`: a resolver's cache-miss leg, answers straight from
//!   authoritative servers — what passive DNS is about;
//! - `FORWARDER_RESPONSE`: the same leg through a forwarder (Unbound's
//!   forward zones);
//! - `AUTH_RESPONSE`: what an authoritative server answered;
//! - `CLIENT_RESPONSE` only when asked for: it is after the cache, so
//!   counts include cache hits, and policy rewrites show up there.
//!
//! Queries carry no answers and are counted and ignored; so are responses
//! of a type not selected. A response a policy rewrote (a `policy` whose
//! action is not PASS: RPZ NXDOMAIN, local data…) is not what the
//! authoritative servers said, and is discarded, counted.
//!
//! The observation time is the response's time (`response_time_*`), the
//! query's if a sender gave only that; a response with neither is counted
//! and discarded, since the time is half of what passive DNS records.

use bytes::Bytes;
use prost::Message as _;

use super::proto::{self, message::Type as MessageType, policy::Action};
use crate::vocab::packet::{Timestamp, Transport};

/// The dnstap message types, in the schema's order (1..=14).
pub const MESSAGE_TYPES: [(MessageType, &str); 14] = [
    (MessageType::AuthQuery, "auth_query"),
    (MessageType::AuthResponse, "auth_response"),
    (MessageType::ResolverQuery, "resolver_query"),
    (MessageType::ResolverResponse, "resolver_response"),
    (MessageType::ClientQuery, "client_query"),
    (MessageType::ClientResponse, "client_response"),
    (MessageType::ForwarderQuery, "forwarder_query"),
    (MessageType::ForwarderResponse, "forwarder_response"),
    (MessageType::StubQuery, "stub_query"),
    (MessageType::StubResponse, "stub_response"),
    (MessageType::ToolQuery, "tool_query"),
    (MessageType::ToolResponse, "tool_response"),
    (MessageType::UpdateQuery, "update_query"),
    (MessageType::UpdateResponse, "update_response"),
];

/// Slots of per-type counters: the 14 types, then one for unknown values.
pub const TYPE_SLOTS: usize = MESSAGE_TYPES.len() + 1;

/// The metric label of type slot `i`.
pub fn type_label(slot: usize) -> &'static str {
    MESSAGE_TYPES.get(slot).map_or("unknown", |(_, name)| name)
}

/// Which response types are recorded: a bit per dnstap type number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Selection(u32);

impl Default for Selection {
    /// RESOLVER_RESPONSE, FORWARDER_RESPONSE and AUTH_RESPONSE.
    fn default() -> Self {
        Selection::of(&[
            MessageType::ResolverResponse,
            MessageType::ForwarderResponse,
            MessageType::AuthResponse,
        ])
    }
}

impl Selection {
    pub fn of(types: &[MessageType]) -> Selection {
        Selection(types.iter().fold(0, |bits, t| bits | 1 << *t as i32))
    }

    pub fn contains(self, t: MessageType) -> bool {
        self.0 & (1 << t as i32) != 0
    }

    /// Parses a list as given to `--dnstap-types`:
    /// `resolver-response,client-response` (the response types only).
    pub fn parse(list: &str) -> Result<Selection, String> {
        let mut types = Vec::new();
        for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            let label = word.replace('-', "_").to_ascii_lowercase();
            let Some((t, _)) = MESSAGE_TYPES
                .iter()
                .find(|(_, name)| *name == label && name.ends_with("_response"))
            else {
                let known: Vec<String> = MESSAGE_TYPES
                    .iter()
                    .filter(|(_, n)| n.ends_with("_response"))
                    .map(|(_, n)| n.replace('_', "-"))
                    .collect();
                return Err(format!(
                    "unknown dnstap response type {word:?} (one of: {})",
                    known.join(", ")
                ));
            };
            types.push(*t);
        }
        if types.is_empty() {
            return Err("no dnstap response type given".into());
        }
        Ok(Selection::of(&types))
    }

    /// The selected types' labels (for logs and reports).
    pub fn labels(self) -> Vec<&'static str> {
        MESSAGE_TYPES
            .iter()
            .filter(|(t, _)| self.contains(*t))
            .map(|(_, n)| *n)
            .collect()
    }
}

/// Why a frame's message was not recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Discard {
    /// A data frame over `--dnstap-max-frame` (skipped unread).
    FrameTooLarge,
    /// The sender went away in the middle of a frame.
    TruncatedFrame,
    /// Not a dnstap protobuf.
    Protobuf,
    /// A `Dnstap` that is not of type MESSAGE, or has no message.
    NotMessage,
    /// A message type this version of the schema does not define.
    UnknownType,
    /// A query: no answers in it.
    Query,
    /// A response type not selected (`--dnstap-types`).
    TypeNotSelected,
    /// A response a policy rewrote (action not PASS).
    Policy,
    /// A response type without its `response_message`.
    NoResponse,
    /// Neither response nor query time.
    NoTime,
}

impl Discard {
    pub const ALL: [Discard; 10] = [
        Discard::FrameTooLarge,
        Discard::TruncatedFrame,
        Discard::Protobuf,
        Discard::NotMessage,
        Discard::UnknownType,
        Discard::Query,
        Discard::TypeNotSelected,
        Discard::Policy,
        Discard::NoResponse,
        Discard::NoTime,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Discard::FrameTooLarge => "frame_too_large",
            Discard::TruncatedFrame => "truncated_frame",
            Discard::Protobuf => "protobuf",
            Discard::NotMessage => "not_message",
            Discard::UnknownType => "unknown_type",
            Discard::Query => "query",
            Discard::TypeNotSelected => "type_not_selected",
            Discard::Policy => "policy",
            Discard::NoResponse => "no_response",
            Discard::NoTime => "no_time",
        }
    }
}

/// A DNS response to record, holding its bytes (a slice of the frame).
#[derive(Clone, Debug)]
pub struct Response {
    pub ts: Timestamp,
    pub transport: Transport,
    pub dns: Bytes,
}

/// What one frame held.
#[derive(Debug)]
pub struct Decoded {
    /// The sender's `identity`, if it gave one.
    pub identity: Option<Bytes>,
    /// The message type's counter slot, if the frame decoded that far.
    pub type_slot: Option<usize>,
    pub verdict: Result<Response, Discard>,
}

/// Decodes one data frame and decides (see the module docs).
pub fn decode(frame: Bytes, selection: Selection) -> Decoded {
    let Ok(dnstap) = proto::Dnstap::decode(frame) else {
        return Decoded {
            identity: None,
            type_slot: None,
            verdict: Err(Discard::Protobuf),
        };
    };
    let identity = dnstap.identity;
    let message = match dnstap.message {
        Some(m) if dnstap.r#type == proto::dnstap::Type::Message as i32 => m,
        _ => {
            return Decoded {
                identity,
                type_slot: None,
                verdict: Err(Discard::NotMessage),
            };
        }
    };
    let Ok(kind) = MessageType::try_from(message.r#type) else {
        return Decoded {
            identity,
            type_slot: Some(MESSAGE_TYPES.len()),
            verdict: Err(Discard::UnknownType),
        };
    };
    let type_slot = Some(kind as usize - 1);
    Decoded {
        identity,
        type_slot,
        verdict: judge(kind, message, selection),
    }
}

fn judge(
    kind: MessageType,
    message: proto::Message,
    selection: Selection,
) -> Result<Response, Discard> {
    if !is_response(kind) {
        return Err(Discard::Query);
    }
    if !selection.contains(kind) {
        return Err(Discard::TypeNotSelected);
    }
    if let Some(policy) = &message.policy
        && rewritten(policy)
    {
        return Err(Discard::Policy);
    }
    let dns = message.response_message.ok_or(Discard::NoResponse)?;
    let ts = match (message.response_time_sec, message.query_time_sec) {
        (Some(secs), _) => Timestamp {
            secs,
            nanos: message.response_time_nsec.unwrap_or(0),
        },
        (None, Some(secs)) => Timestamp {
            secs,
            nanos: message.query_time_nsec.unwrap_or(0),
        },
        (None, None) => return Err(Discard::NoTime),
    };
    let transport = match message
        .socket_protocol
        .and_then(|p| proto::SocketProtocol::try_from(p).ok())
    {
        None | Some(proto::SocketProtocol::Udp | proto::SocketProtocol::DnsCryptUdp) => {
            Transport::Udp
        }
        // DoT, DoH, DoQ and DNSCrypt over TCP are streams too.
        Some(_) => Transport::Tcp,
    };
    Ok(Response { ts, transport, dns })
}

fn is_response(kind: MessageType) -> bool {
    (kind as i32) % 2 == 0
}

/// Whether a policy changed the response: an action other than PASS. A
/// policy message with nothing in it changed nothing.
fn rewritten(policy: &proto::Policy) -> bool {
    match policy.action {
        Some(a) => a != Action::Pass as i32,
        None => policy.r#type.is_some() || policy.rule.is_some() || policy.r#match.is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn frame(
        kind: MessageType,
        response: Option<&[u8]>,
        policy: Option<Action>,
    ) -> Bytes {
        let message = proto::Message {
            r#type: kind as i32,
            socket_protocol: Some(proto::SocketProtocol::Tcp as i32),
            response_time_sec: Some(1_700_000_000),
            response_time_nsec: Some(5),
            response_message: response.map(Bytes::copy_from_slice),
            policy: policy.map(|a| proto::Policy {
                action: Some(a as i32),
                ..Default::default()
            }),
            ..Default::default()
        };
        let dnstap = proto::Dnstap {
            identity: Some(Bytes::from_static(b"resolver-1")),
            r#type: proto::dnstap::Type::Message as i32,
            message: Some(message),
            ..Default::default()
        };
        dnstap.encode_to_vec().into()
    }

    #[test]
    fn resolver_response_is_recorded() {
        let d = decode(
            frame(MessageType::ResolverResponse, Some(b"dns"), None),
            Selection::default(),
        );
        assert_eq!(d.identity.as_deref(), Some(&b"resolver-1"[..]));
        assert_eq!(type_label(d.type_slot.unwrap()), "resolver_response");
        let r = d.verdict.unwrap();
        assert_eq!(&r.dns[..], b"dns");
        assert_eq!(
            r.ts,
            Timestamp {
                secs: 1_700_000_000,
                nanos: 5
            }
        );
        assert_eq!(r.transport, Transport::Tcp);
    }

    #[test]
    fn what_is_not_recorded_says_why() {
        let sel = Selection::default();
        let cases = [
            (
                frame(MessageType::ResolverQuery, None, None),
                Discard::Query,
            ),
            (
                frame(MessageType::ClientResponse, Some(b"x"), None),
                Discard::TypeNotSelected,
            ),
            (
                frame(
                    MessageType::ResolverResponse,
                    Some(b"x"),
                    Some(Action::Nxdomain),
                ),
                Discard::Policy,
            ),
            (
                frame(MessageType::AuthResponse, None, None),
                Discard::NoResponse,
            ),
            (Bytes::from_static(b"\xff\xff\xff"), Discard::Protobuf),
        ];
        for (f, why) in cases {
            assert_eq!(decode(f, sel).verdict.unwrap_err(), why);
        }
        let passed = frame(
            MessageType::ResolverResponse,
            Some(b"x"),
            Some(Action::Pass),
        );
        assert!(decode(passed, sel).verdict.is_ok());
        // A Dnstap of no known type, and one without its message.
        let empty = proto::Dnstap::default().encode_to_vec();
        assert_eq!(
            decode(empty.into(), sel).verdict.unwrap_err(),
            Discard::NotMessage
        );
    }

    #[test]
    fn selection_parses_response_types_only() {
        let s = Selection::parse("client-response, RESOLVER_RESPONSE").unwrap();
        assert_eq!(s.labels(), ["resolver_response", "client_response"]);
        assert!(Selection::parse("resolver-query").is_err());
        assert!(Selection::parse("nonsense").is_err());
        assert!(Selection::parse(",").is_err());
        assert_eq!(
            Selection::default().labels(),
            ["auth_response", "resolver_response", "forwarder_response"]
        );
    }
}

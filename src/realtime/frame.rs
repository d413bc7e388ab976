//! RFC 6455 frames as this server reads and writes them: a parser for client
//! frames (always masked, payload at most [`MAX_PAYLOAD`]) and encoders for
//! server frames (never masked). No I/O and no state: [`parse`] is a pure
//! function of the bytes received so far, so it can be fuzzed on its own.

/// Client frames carry at most this much payload (the contract's 64 KiB).
pub const MAX_PAYLOAD: usize = super::protocol::MAX_FRAME_BYTES;
/// The longest header: 2 bytes, 8 of extended length, 4 of mask.
pub const MAX_HEADER: usize = 14;
/// Control frames (close, ping, pong) carry at most this much (RFC 6455 §5.5).
const MAX_CONTROL_PAYLOAD: usize = 125;

const FIN: u8 = 0x80;
const RSV: u8 = 0x70;
const MASKED: u8 = 0x80;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl OpCode {
    fn from_bits(bits: u8) -> Option<Self> {
        Some(match bits {
            0x0 => Self::Continuation,
            0x1 => Self::Text,
            0x2 => Self::Binary,
            0x8 => Self::Close,
            0x9 => Self::Ping,
            0xA => Self::Pong,
            _ => return None,
        })
    }

    fn bits(self) -> u8 {
        match self {
            Self::Continuation => 0x0,
            Self::Text => 0x1,
            Self::Binary => 0x2,
            Self::Close => 0x8,
            Self::Ping => 0x9,
            Self::Pong => 0xA,
        }
    }

    pub fn is_control(self) -> bool {
        matches!(self, Self::Close | Self::Ping | Self::Pong)
    }
}

/// A client frame's header, read from the front of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub fin: bool,
    pub opcode: OpCode,
    pub mask: [u8; 4],
    /// Bytes before the payload.
    pub header_len: usize,
    pub payload_len: usize,
}

impl Header {
    /// The whole frame's length on the wire.
    pub fn frame_len(&self) -> usize {
        self.header_len + self.payload_len
    }
}

/// Why a client's bytes are refused; the connection ends with [`close_code`](Self::close_code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// A payload longer than [`MAX_PAYLOAD`].
    TooBig,
    /// Something RFC 6455 forbids (reserved bits or opcodes, an unmasked
    /// client frame, a long or fragmented control frame, a bad close payload).
    Protocol(&'static str),
}

impl FrameError {
    pub fn close_code(self) -> u16 {
        match self {
            Self::TooBig => close::TOO_BIG,
            Self::Protocol(_) => close::PROTOCOL,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Self::TooBig => "frame too large",
            Self::Protocol(reason) => reason,
        }
    }
}

/// Close codes this server sends (RFC 6455 §7.4 and the contract's 4xxx).
pub mod close {
    pub const NORMAL: u16 = 1000;
    pub const PROTOCOL: u16 = 1002;
    pub const INVALID_DATA: u16 = 1007;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
    pub const RESTARTING: u16 = 1012;
    pub const KICKED: u16 = 4001;
    pub const BANNED: u16 = 4003;
    /// The socket did not take its frames: over its outbox budget, or not
    /// draining at all for a while.
    pub const TOO_SLOW: u16 = 4008;
}

/// Reads the header at the front of `buf`: `Ok(None)` until all of it has
/// arrived. Checks everything a header alone can show, so a 1 GiB length is
/// refused before any of its payload (or even its mask) is read.
pub fn parse_header(buf: &[u8]) -> Result<Option<Header>, FrameError> {
    let [first, second, ..] = *buf else {
        return Ok(None);
    };
    if first & RSV != 0 {
        return Err(FrameError::Protocol("reserved bits set"));
    }
    let opcode = OpCode::from_bits(first & 0x0F).ok_or(FrameError::Protocol("unknown opcode"))?;
    let fin = first & FIN != 0;
    if second & MASKED == 0 {
        return Err(FrameError::Protocol("client frames must be masked"));
    }
    let Some((len_bytes, payload_len)) = payload_length(buf) else {
        return Ok(None);
    };
    if opcode.is_control() && (!fin || payload_len > MAX_CONTROL_PAYLOAD as u64) {
        return Err(FrameError::Protocol("control frames are short and unfragmented"));
    }
    if payload_len > MAX_PAYLOAD as u64 {
        return Err(FrameError::TooBig);
    }
    let mask_at = 2 + len_bytes;
    let Some(mask) = buf.get(mask_at..mask_at + 4) else {
        return Ok(None);
    };
    Ok(Some(Header {
        fin,
        opcode,
        mask: [mask[0], mask[1], mask[2], mask[3]],
        header_len: mask_at + 4,
        payload_len: payload_len as usize,
    }))
}

/// The extended-length byte count and the payload length a header
/// declares, once its length bytes have arrived.
fn payload_length(buf: &[u8]) -> Option<(usize, u64)> {
    match *buf.get(1)? & 0x7F {
        126 => buf.get(2..4).map(|b| (2, u64::from(u16::from_be_bytes([b[0], b[1]])))),
        127 => buf.get(2..10).map(|b| {
            let mut be = [0u8; 8];
            be.copy_from_slice(b);
            (8, u64::from_be_bytes(be))
        }),
        short => Some((0, u64::from(short))),
    }
}

/// The whole length on the wire that the frame at the front of `buf`
/// declares, whatever else is wrong with it: how much to skip of a frame
/// refused as too big.
pub fn declared_frame_len(buf: &[u8]) -> Option<u64> {
    let (len_bytes, payload_len) = payload_length(buf)?;
    let mask = if buf[1] & MASKED != 0 { 4 } else { 0 };
    Some((2 + len_bytes + mask) as u64).map(|head| head.saturating_add(payload_len))
}

/// The first whole frame in `buf`, with its payload still masked; `Ok(None)`
/// until all of it has arrived.
pub fn parse(buf: &[u8]) -> Result<Option<(Header, &[u8])>, FrameError> {
    let Some(header) = parse_header(buf)? else {
        return Ok(None);
    };
    Ok(buf
        .get(header.header_len..header.frame_len())
        .map(|payload| (header, payload)))
}

/// Unmasks (or masks: the operation is its own inverse) a payload in place.
pub fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    for (i, byte) in payload.iter_mut().enumerate() {
        *byte ^= mask[i % 4];
    }
}

/// The status code of a client's close payload (unmasked): `None` when it
/// has none. A code the RFC reserves, or a reason that is not UTF-8, is a
/// protocol error.
pub fn close_status(payload: &[u8]) -> Result<Option<u16>, FrameError> {
    match payload {
        [] => Ok(None),
        [_] => Err(FrameError::Protocol("a close payload has a 2-byte code")),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            let allowed = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
            if !allowed {
                return Err(FrameError::Protocol("reserved close code"));
            }
            std::str::from_utf8(reason).map_err(|_| FrameError::Protocol("close reason is not UTF-8"))?;
            Ok(Some(code))
        }
    }
}

/// Appends a server frame header (FIN set, no mask) for `payload_len` bytes.
pub fn put_header(out: &mut Vec<u8>, opcode: OpCode, payload_len: usize) {
    out.push(FIN | opcode.bits());
    match payload_len {
        0..=125 => out.push(payload_len as u8),
        126..=0xFFFF => {
            out.push(126);
            out.extend_from_slice(&(payload_len as u16).to_be_bytes());
        }
        _ => {
            out.push(127);
            out.extend_from_slice(&(payload_len as u64).to_be_bytes());
        }
    }
}

/// Appends one whole server frame.
pub fn put_frame(out: &mut Vec<u8>, opcode: OpCode, payload: &[u8]) {
    put_header(out, opcode, payload.len());
    out.extend_from_slice(payload);
}

/// A close frame's payload: the code, then as much of `reason` as fits.
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut cut = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(&reason.as_bytes()[..cut]);
    payload
}

/// The length of the server frame at the front of `buf` (one this module
/// encoded, so unmasked), once its header is there.
pub fn server_frame_len(buf: &[u8]) -> Option<usize> {
    payload_length(buf).map(|(len_bytes, payload_len)| 2 + len_bytes + payload_len as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client frame as a browser would send it.
    fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut out = vec![first];
        match payload.len() {
            n @ 0..=125 => out.push(MASKED | n as u8),
            n @ 126..=0xFFFF => {
                out.push(MASKED | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(MASKED | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        let mut body = payload.to_vec();
        unmask(&mut body, mask);
        out.extend_from_slice(&body);
        out
    }

    fn text(first: u8, s: &str) -> Vec<u8> {
        client_frame(first, s.as_bytes())
    }

    #[test]
    fn a_masked_text_frame_parses_and_unmasks() {
        let bytes = text(0x81, r#"{"type":"ping"}"#);
        let (header, payload) = parse(&bytes).unwrap().unwrap();
        assert_eq!(header.opcode, OpCode::Text);
        assert!(header.fin);
        assert_eq!(header.frame_len(), bytes.len());
        let mut payload = payload.to_vec();
        unmask(&mut payload, header.mask);
        assert_eq!(payload, br#"{"type":"ping"}"#);
    }

    #[test]
    fn every_prefix_of_a_frame_is_incomplete_not_an_error() {
        for len in [0, 5, 125, 126, 300, 65_535, 65_536] {
            let bytes = client_frame(0x81, &vec![b'x'; len]);
            for cut in 0..bytes.len() {
                assert_eq!(parse(&bytes[..cut]), Ok(None), "len {len} cut {cut}");
            }
            assert!(parse(&bytes).unwrap().is_some());
        }
    }

    #[test]
    fn oversize_is_refused_from_the_header_alone() {
        let mut head = vec![0x81, MASKED | 127];
        head.extend_from_slice(&(1u64 << 30).to_be_bytes());
        assert_eq!(parse_header(&head), Err(FrameError::TooBig));
        let bytes = client_frame(0x81, &vec![b'x'; MAX_PAYLOAD + 1]);
        assert_eq!(
            parse(&bytes[..10]),
            Err(FrameError::TooBig),
            "refused before the mask arrives"
        );
        assert_eq!(FrameError::TooBig.close_code(), 1009);
        let mut huge = vec![0x81, MASKED | 127];
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(parse_header(&huge), Err(FrameError::TooBig));
        assert_eq!(declared_frame_len(&bytes[..10]), Some(bytes.len() as u64));
        assert_eq!(declared_frame_len(&huge), Some(u64::MAX));
    }

    #[test]
    fn protocol_violations_are_errors() {
        let unmasked = [0x81, 0x02, b'h', b'i'];
        let reserved_bits = text(0x81 | 0x40, "x");
        let reserved_opcode = text(0x83, "x");
        let fragmented_ping = client_frame(0x09, b"");
        let long_ping = client_frame(0x89, &[0; 126]);
        for bad in [
            &unmasked[..],
            &reserved_bits,
            &reserved_opcode,
            &fragmented_ping,
            &long_ping,
        ] {
            let error = parse(bad).unwrap_err();
            assert!(matches!(error, FrameError::Protocol(_)), "{bad:?}");
            assert_eq!(error.close_code(), 1002);
        }
    }

    #[test]
    fn close_payloads_are_checked() {
        assert_eq!(close_status(b""), Ok(None));
        assert_eq!(close_status(&1000u16.to_be_bytes()), Ok(Some(1000)));
        let mut with_reason = 4001u16.to_be_bytes().to_vec();
        with_reason.extend_from_slice("bye é".as_bytes());
        assert_eq!(close_status(&with_reason), Ok(Some(4001)));
        for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000] {
            assert!(close_status(&code.to_be_bytes()).is_err(), "{code}");
        }
        assert!(close_status(&[3]).is_err());
        assert!(close_status(&[0x03, 0xE8, 0xFF]).is_err(), "reason not UTF-8");
    }

    #[test]
    fn server_frames_have_the_shortest_length_and_no_mask() {
        for (len, header) in [(0, 2), (125, 2), (126, 4), (65_535, 4), (65_536, 10)] {
            let mut out = Vec::new();
            put_frame(&mut out, OpCode::Text, &vec![b'a'; len]);
            assert_eq!(out.len(), header + len);
            assert_eq!(out[0], 0x81);
            assert_eq!(out[1] & MASKED, 0);
            assert_eq!(server_frame_len(&out), Some(out.len()));
        }
        assert_eq!(server_frame_len(&[0x81]), None);
    }

    #[test]
    fn close_reasons_are_cut_on_a_character_boundary() {
        let payload = close_payload(4008, &"é".repeat(100));
        assert!(payload.len() <= MAX_CONTROL_PAYLOAD);
        assert_eq!(close_status(&payload).unwrap(), Some(4008));
    }

    /// A cheap stand-in for the fuzzer: arbitrary bytes never panic, and
    /// whatever parses lies within the buffer.
    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let len = (next() % 40) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if let Ok(Some((header, payload))) = parse(&bytes) {
                assert!(header.frame_len() <= bytes.len());
                assert_eq!(payload.len(), header.payload_len);
            }
            let _ = close_status(&bytes);
            let _ = server_frame_len(&bytes);
            let _ = declared_frame_len(&bytes);
        }
    }
}

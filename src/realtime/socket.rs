//! One WebSocket connection's bytes, owned by its session: reads land in a
//! per-thread scratch buffer and only the unhandled rest of a frame is kept;
//! frames queued during one turn of the session go out in one `write`; the
//! outbox is bounded in bytes and holds pending bytes only while the socket
//! would block; and closing ends the TCP connection from our side as soon as
//! the close handshake allows (RFC 6455 §7.1.1).

use std::cell::Cell;
use std::io;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytestring::ByteString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::frame::{self, FrameError, OpCode, MAX_HEADER, MAX_PAYLOAD};

/// How long a closing socket may take to send its last bytes and hear the
/// client's close frame before the connection is dropped.
const CLOSE_LINGER: Duration = Duration::from_secs(10);
/// Bytes read from one socket in one turn, so one busy client cannot hold
/// its thread; the rest is read on the next turn.
const READ_PER_TURN: usize = 64 * 1024;
/// One read takes at most this much: room for one largest client frame.
const SCRATCH_BYTES: usize = MAX_PAYLOAD + MAX_HEADER;
/// A thread's write scratch shrinks back to this after a larger write.
const WRITE_SCRATCH_KEEP: usize = 64 * 1024;

thread_local! {
    static READ_SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    static WRITE_SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Borrows this thread's scratch buffer for `f`. Re-entrant use gets a
/// fresh buffer rather than a panic.
fn with_scratch<T>(scratch: &'static std::thread::LocalKey<Cell<Vec<u8>>>, f: impl FnOnce(&mut Vec<u8>) -> T) -> T {
    let mut buf = scratch.with(Cell::take);
    let out = f(&mut buf);
    scratch.with(|cell| cell.set(buf));
    out
}

/// A frame from the client, its payload copied out of the read buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    Text(String),
    /// Binary, continuation or unfinished frames: this protocol has none.
    Unsupported,
    Ping(Vec<u8>),
    Pong,
    /// The client's close frame, with its status code if it gave one.
    Close(Option<u16>),
}

/// What a read turn found.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    Frame(Incoming),
    /// Nothing more for now; the session is woken when there is.
    Pending,
    /// This turn's share is read; the session is woken to read on.
    Yield,
    /// The client closed the connection, or it failed.
    Gone,
    /// Bytes RFC 6455 forbids (or text that is not UTF-8): close with this code.
    Refused {
        code: u16,
        reason: &'static str,
    },
}

/// The socket did not take its frames fast enough: over the byte budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverBudget;

/// How a closing connection ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Send a close frame and wait (briefly) for the client's.
    Close { code: u16, reason: String },
    /// Answer the client's close frame and close TCP at once.
    Reply { code: u16 },
    /// Close TCP without a word (the client is gone or silent).
    Drop,
}

pub struct Socket {
    stream: Option<TcpStream>,
    /// Bytes read and not yet handled: the start of a frame, or frames held
    /// back while the session waits. Empty (unallocated) most of the time.
    unread: Vec<u8>,
    unread_at: usize,
    /// Payload bytes of a refused oversize frame still to come.
    skip: usize,
    outbox: Outbox,
}

impl Socket {
    /// `early` holds bytes that arrived with the upgrade request.
    pub fn new(stream: TcpStream, early: &[u8], budget: usize) -> Self {
        Self {
            stream: Some(stream),
            unread: early.to_vec(),
            unread_at: 0,
            skip: 0,
            outbox: Outbox::new(budget),
        }
    }

    /// The next frame from the client, reading the socket when the bytes
    /// already here hold none. `read_so_far` counts this turn's bytes.
    pub fn read(&mut self, task: &mut Context<'_>, read_so_far: &mut usize) -> Read {
        loop {
            if let Some(read) = self.buffered_frame() {
                return read;
            }
            if *read_so_far >= READ_PER_TURN {
                task.waker().wake_by_ref();
                return Read::Yield;
            }
            if !self.unread.is_empty() {
                self.reserve_for_frame();
            }
            let Some(stream) = &self.stream else {
                return Read::Gone;
            };
            match stream.poll_read_ready(task) {
                Poll::Pending => return Read::Pending,
                Poll::Ready(Err(_)) => return Read::Gone,
                Poll::Ready(Ok(())) => {}
            }
            let outcome = if self.unread.is_empty() {
                with_scratch(&READ_SCRATCH, |scratch| {
                    scratch.resize(SCRATCH_BYTES, 0);
                    let outcome = stream.try_read(scratch);
                    if let Ok(n) = outcome {
                        self.unread.extend_from_slice(&scratch[..n]);
                    }
                    outcome
                })
            } else {
                stream.try_read_buf(&mut self.unread)
            };
            match outcome {
                Ok(0) => return Read::Gone,
                Ok(n) => *read_so_far += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Read::Gone,
            }
        }
    }

    /// Makes room in `unread` for the rest of the frame it starts with.
    fn reserve_for_frame(&mut self) {
        let have = &self.unread[self.unread_at..];
        let need = match frame::parse_header(have) {
            Ok(Some(header)) => header.frame_len().saturating_sub(have.len()),
            _ => MAX_HEADER,
        };
        self.unread.reserve(need.max(4096));
    }

    /// A whole frame from the bytes already read, if they hold one.
    fn buffered_frame(&mut self) -> Option<Read> {
        if self.skip > 0 {
            let dropped = self.skip.min(self.unread.len() - self.unread_at);
            self.skip -= dropped;
            self.consume(dropped);
            if self.skip > 0 {
                return None;
            }
        }
        let have = &mut self.unread[self.unread_at..];
        let (header, len) = match frame::parse(have) {
            Ok(None) => return None,
            Ok(Some((header, _))) => (header, header.frame_len()),
            Err(error) => return Some(self.refuse(error)),
        };
        let payload = &mut have[header.header_len..len];
        frame::unmask(payload, header.mask);
        let incoming = match header.opcode {
            OpCode::Text if header.fin => match std::str::from_utf8(payload) {
                Ok(text) => Ok(Incoming::Text(text.to_owned())),
                Err(_) => Err(Read::Refused {
                    code: frame::close::INVALID_DATA,
                    reason: "text is not UTF-8",
                }),
            },
            OpCode::Text | OpCode::Binary | OpCode::Continuation => Ok(Incoming::Unsupported),
            OpCode::Ping => Ok(Incoming::Ping(payload.to_vec())),
            OpCode::Pong => Ok(Incoming::Pong),
            OpCode::Close => match frame::close_status(payload) {
                Ok(code) => Ok(Incoming::Close(code)),
                Err(error) => Err(Read::Refused {
                    code: error.close_code(),
                    reason: error.reason(),
                }),
            },
        };
        self.consume(len);
        Some(incoming.map_or_else(|refused| refused, Read::Frame))
    }

    fn refuse(&mut self, error: FrameError) -> Read {
        if error == FrameError::TooBig {
            // Let the client finish sending it while the close goes out, so
            // it reads our close frame rather than a reset.
            let have = &self.unread[self.unread_at..];
            let declared = frame::declared_frame_len(have).unwrap_or(0);
            self.skip = usize::try_from(declared.saturating_sub(have.len() as u64)).unwrap_or(usize::MAX);
        }
        self.unread = Vec::new();
        self.unread_at = 0;
        Read::Refused {
            code: error.close_code(),
            reason: error.reason(),
        }
    }

    fn consume(&mut self, n: usize) {
        self.unread_at += n;
        if self.unread_at >= self.unread.len() {
            self.unread = Vec::new();
            self.unread_at = 0;
        } else if self.unread_at > self.unread.len() / 2 {
            self.unread.drain(..self.unread_at);
            self.unread_at = 0;
        }
    }

    /// Queues a text frame (shared, not copied until it is written).
    pub fn send_text(&mut self, text: ByteString) -> Result<(), OverBudget> {
        self.outbox.push(Out::Text(text))
    }

    pub fn send_control(&mut self, opcode: OpCode, payload: Vec<u8>) -> Result<(), OverBudget> {
        self.outbox.push(Out::Control(opcode, payload))
    }

    /// Writes what is queued, in one `write` when the socket takes it all;
    /// what it does not take waits until it is writable again.
    pub fn flush(&mut self, task: &mut Context<'_>) -> io::Result<()> {
        let Some(stream) = &self.stream else {
            return Ok(());
        };
        loop {
            self.outbox.write_to(|bytes| stream.try_write(bytes))?;
            if !self.outbox.is_blocked() {
                return Ok(());
            }
            match stream.poll_write_ready(task) {
                Poll::Pending => return Ok(()),
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Ready(Ok(())) => {}
            }
        }
    }

    /// How long the socket has taken no bytes while some wait for it.
    pub fn stalled_for(&self) -> Option<Duration> {
        self.outbox.blocked_since.map(|since| since.elapsed())
    }

    /// Bytes waiting for the socket (queued or pending).
    pub fn outstanding(&self) -> usize {
        self.outbox.outstanding()
    }

    /// Ends the connection as `ending` says, on a small task of its own so
    /// the session can go at once.
    pub fn close(&mut self, ending: Ending) {
        let Some(stream) = self.stream.take() else {
            return;
        };
        let (close_frame, await_reply) = match &ending {
            Ending::Close { code, reason } => (Some(frame::close_payload(*code, reason)), true),
            Ending::Reply { code } => (Some(frame::close_payload(*code, "")), false),
            Ending::Drop => (None, false),
        };
        let Some(close_frame) = close_frame else {
            return;
        };
        if ending_is_too_slow(&ending) {
            self.outbox.discard_unstarted();
        }
        let mut bytes = self.outbox.take_all();
        frame::put_frame(&mut bytes, OpCode::Close, &close_frame);
        let skip = std::mem::take(&mut self.skip);
        actix_web::rt::spawn(linger(stream, bytes, await_reply, skip));
    }
}

fn ending_is_too_slow(ending: &Ending) -> bool {
    matches!(ending, Ending::Close { code, .. } if *code == frame::close::TOO_SLOW)
}

/// Sends the last bytes, closes our half of the TCP connection, and when
/// the client owes us its close frame, waits for it (or EOF) before the
/// socket is dropped; all within [`CLOSE_LINGER`].
async fn linger(mut stream: TcpStream, bytes: Vec<u8>, await_reply: bool, skip: usize) {
    let ending = async {
        stream.write_all(&bytes).await?;
        stream.shutdown().await?;
        if await_reply {
            await_close_frame(&mut stream, skip).await?;
        }
        Ok::<_, io::Error>(())
    };
    let _ = tokio::time::timeout(CLOSE_LINGER, ending).await;
}

/// Reads (and discards) until the client's close frame or EOF.
async fn await_close_frame(stream: &mut TcpStream, mut skip: usize) -> io::Result<()> {
    let mut buf = [0u8; 512];
    let mut have = 0;
    loop {
        let n = stream.read(&mut buf[have..]).await?;
        if n == 0 {
            return Ok(());
        }
        have += n;
        let mut at = 0;
        loop {
            let skipped = skip.min(have - at);
            skip -= skipped;
            at += skipped;
            if skip > 0 {
                break;
            }
            match frame::parse_header(&buf[at..have]) {
                Ok(Some(header)) if header.opcode == OpCode::Close => return Ok(()),
                Ok(Some(header)) => {
                    at += header.header_len;
                    skip = header.payload_len;
                }
                Ok(None) => break,
                Err(_) => return Ok(()),
            }
        }
        buf.copy_within(at..have, 0);
        have -= at;
    }
}

/// A frame waiting for the end of the session's turn.
enum Out {
    Text(ByteString),
    Control(OpCode, Vec<u8>),
}

impl Out {
    fn wire_len(&self) -> usize {
        let payload = match self {
            Out::Text(text) => text.len(),
            Out::Control(_, payload) => payload.len(),
        };
        payload
            + if payload < 126 {
                2
            } else if payload <= 0xFFFF {
                4
            } else {
                10
            }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Out::Text(text) => frame::put_frame(out, OpCode::Text, text.as_bytes()),
            Out::Control(opcode, payload) => frame::put_frame(out, *opcode, payload),
        }
    }
}

/// Frames on their way to one socket, bounded in bytes.
struct Outbox {
    /// The frames queued in this turn, which go out together at its end: the
    /// first inline (a turn usually has one), the others in `more`.
    first: Option<Out>,
    more: Vec<Out>,
    queued_bytes: usize,
    /// Bytes the socket would not take yet: `pending[sent..]`. Allocated
    /// only while the socket would block.
    pending: Vec<u8>,
    sent: usize,
    /// Where the frame being written ends in `pending`: what must still go
    /// out whole if the rest is discarded.
    frame_end: usize,
    /// Since when the socket has taken nothing while bytes wait.
    blocked_since: Option<Instant>,
    budget: usize,
}

impl Outbox {
    fn new(budget: usize) -> Self {
        Self {
            first: None,
            more: Vec::new(),
            queued_bytes: 0,
            pending: Vec::new(),
            sent: 0,
            frame_end: 0,
            blocked_since: None,
            budget,
        }
    }

    fn outstanding(&self) -> usize {
        self.pending.len() - self.sent + self.queued_bytes
    }

    fn is_blocked(&self) -> bool {
        self.sent < self.pending.len()
    }

    /// Queues a frame; an empty outbox takes any one frame whatever its size.
    fn push(&mut self, out: Out) -> Result<(), OverBudget> {
        let len = out.wire_len();
        let outstanding = self.outstanding();
        if outstanding > 0 && outstanding + len > self.budget {
            return Err(OverBudget);
        }
        if self.is_blocked() {
            out.encode(&mut self.pending);
            return Ok(());
        }
        if self.first.is_none() {
            self.first = Some(out);
        } else {
            self.more.push(out);
        }
        self.queued_bytes += len;
        Ok(())
    }

    /// This turn's frames, in order, leaving none queued.
    fn take_queued(&mut self) -> impl Iterator<Item = Out> {
        self.queued_bytes = 0;
        self.first.take().into_iter().chain(std::mem::take(&mut self.more))
    }

    /// Writes through `write` (a non-blocking write) until everything is
    /// out or the socket would block.
    fn write_to(&mut self, mut write: impl FnMut(&[u8]) -> io::Result<usize>) -> io::Result<()> {
        if self.is_blocked() {
            let mut pending = std::mem::take(&mut self.pending);
            for out in self.take_queued() {
                out.encode(&mut pending);
            }
            self.pending = pending;
            let written = write_some(&self.pending[self.sent..], &mut write)?;
            self.advance(written);
            return Ok(());
        }
        if self.first.is_none() {
            return Ok(());
        }
        with_scratch(&WRITE_SCRATCH, |scratch| {
            scratch.clear();
            for out in self.take_queued() {
                out.encode(scratch);
            }
            let outcome = write_some(scratch, &mut write);
            if let Ok(written) = outcome {
                if written < scratch.len() {
                    self.block_on(&scratch[..], written);
                }
            }
            if scratch.capacity() > WRITE_SCRATCH_KEEP {
                *scratch = Vec::with_capacity(WRITE_SCRATCH_KEEP);
            }
            outcome.map(|_| ())
        })
    }

    /// The socket took `written` bytes of `batch`: the rest waits.
    fn block_on(&mut self, batch: &[u8], written: usize) {
        let mut end = 0;
        while end < written {
            end += frame::server_frame_len(&batch[end..]).unwrap_or(batch.len() - end);
        }
        self.pending = batch[written..].to_vec();
        self.sent = 0;
        self.frame_end = end - written;
        self.blocked_since = Some(Instant::now());
    }

    fn advance(&mut self, written: usize) {
        if written > 0 {
            self.blocked_since = Some(Instant::now());
        }
        self.sent += written;
        while self.frame_end < self.sent && self.frame_end < self.pending.len() {
            self.frame_end +=
                frame::server_frame_len(&self.pending[self.frame_end..]).unwrap_or(self.pending.len() - self.frame_end);
        }
        if self.sent >= self.pending.len() {
            self.pending = Vec::new();
            self.sent = 0;
            self.frame_end = 0;
            self.blocked_since = None;
        } else if self.sent > self.pending.len() / 2 {
            self.pending.drain(..self.sent);
            self.frame_end -= self.sent;
            self.sent = 0;
        }
    }

    /// Drops every frame not yet started, keeping the end of the one
    /// being written so the stream stays well formed.
    fn discard_unstarted(&mut self) {
        self.take_queued().for_each(drop);
        self.pending.truncate(self.frame_end.max(self.sent));
    }

    /// Everything still to send, as bytes.
    fn take_all(&mut self) -> Vec<u8> {
        let mut bytes = self.pending.split_off(self.sent);
        for out in self.take_queued() {
            out.encode(&mut bytes);
        }
        *self = Self::new(self.budget);
        bytes
    }
}

/// Writes until `write` would block; answers how much it took.
fn write_some(bytes: &[u8], write: &mut impl FnMut(&[u8]) -> io::Result<usize>) -> io::Result<usize> {
    let mut written = 0;
    while written < bytes.len() {
        match write(&bytes[written..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Out {
        Out::Text(ByteString::from(s.to_owned()))
    }

    /// A socket that takes `room` bytes, then would block.
    fn taking(room: &mut usize) -> impl FnMut(&[u8]) -> io::Result<usize> + '_ {
        move |bytes: &[u8]| {
            if *room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = bytes.len().min(*room);
            *room -= n;
            Ok(n)
        }
    }

    #[test]
    fn a_turn_goes_out_in_one_write() {
        let mut outbox = Outbox::new(1024);
        assert_eq!(outbox.push(text("a")), Ok(()));
        assert_eq!(outbox.push(text("bb")), Ok(()));
        let mut writes = Vec::new();
        outbox
            .write_to(|bytes| {
                writes.push(bytes.to_vec());
                Ok(bytes.len())
            })
            .unwrap();
        assert_eq!(writes, vec![vec![0x81, 1, b'a', 0x81, 2, b'b', b'b']]);
        assert!(!outbox.is_blocked());
        assert_eq!(outbox.pending.capacity(), 0, "nothing kept once written");
    }

    #[test]
    fn what_the_socket_refuses_waits_and_later_frames_join_it() {
        let mut outbox = Outbox::new(1024);
        outbox.push(text("hello")).unwrap();
        let mut room = 3;
        outbox.write_to(taking(&mut room)).unwrap();
        assert!(outbox.is_blocked());
        assert_eq!(outbox.outstanding(), 4);
        assert_eq!(outbox.push(text("x")), Ok(()), "appended to what waits");
        assert_eq!(outbox.pending, vec![b'e', b'l', b'l', b'o', 0x81, 1, b'x']);
        let mut writes = 0;
        outbox
            .write_to(|bytes| {
                writes += 1;
                Ok(bytes.len())
            })
            .unwrap();
        assert_eq!(writes, 1);
        assert!(!outbox.is_blocked());
        assert!(outbox.blocked_since.is_none());
    }

    #[test]
    fn the_budget_bounds_what_waits_but_one_frame_always_fits() {
        let mut outbox = Outbox::new(10);
        let big = "x".repeat(100);
        assert_eq!(outbox.push(text(&big)), Ok(()), "an empty outbox takes any frame");
        assert_eq!(outbox.push(text("y")), Err(OverBudget));
        let mut room = 0;
        outbox.write_to(taking(&mut room)).unwrap();
        assert_eq!(outbox.outstanding(), 102);
        assert_eq!(outbox.push(text("y")), Err(OverBudget));
    }

    #[test]
    fn discarding_keeps_the_frame_being_written_whole() {
        let mut outbox = Outbox::new(1 << 20);
        outbox.push(text("abcdef")).unwrap();
        outbox.push(text("second")).unwrap();
        let mut room = 4;
        outbox.write_to(taking(&mut room)).unwrap();
        outbox.push(text("third")).unwrap();
        outbox.discard_unstarted();
        assert_eq!(outbox.take_all(), b"cdef".to_vec(), "the rest of the first frame only");
    }

    #[test]
    fn partial_writes_track_frame_boundaries() {
        let mut outbox = Outbox::new(1 << 20);
        for word in ["one", "two", "three"] {
            outbox.push(text(word)).unwrap();
        }
        let mut room = 1;
        outbox.write_to(taking(&mut room)).unwrap();
        // Written: 0x81. Pending: [3 'o' 'n' 'e'] [0x81 3 't' 'w' 'o'] [...]
        let mut room = 7;
        outbox.write_to(taking(&mut room)).unwrap();
        // Now inside "two": its remaining "wo" must survive a discard.
        outbox.discard_unstarted();
        assert_eq!(outbox.take_all(), b"wo".to_vec());
    }
}

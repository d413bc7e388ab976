//! Keeps one outgoing RTP stream continuous while its source changes.
//!
//! A receive slot carries one speaker at a time under its own SSRC. When
//! the slot passes to another speaker, or forwarding resumes after a pause
//! (mute, deafen), the incoming sequence numbers and timestamps jump; the
//! browser's jitter buffer would take that for loss or a clock jump. So
//! each resumption is stitched on: the next packet follows the last one
//! sent, with the timestamp advanced by the wall-clock time in between.

use std::time::Instant;

/// Opus's RTP clock.
const CLOCK_RATE: u64 = 48_000;
/// One 20 ms Opus frame, the least a resumed stream moves on by.
const MIN_STEP: u32 = 960;

#[derive(Debug, Default)]
pub struct Rewriter {
    seq_offset: u16,
    ts_offset: u32,
    last: Option<Sent>,
    /// The next packet starts a new stretch (new source or a pause ended).
    resync: bool,
    /// The SSRC the current stretch comes from.
    source: Option<u32>,
}

#[derive(Debug, Clone, Copy)]
struct Sent {
    seq: u16,
    ts: u32,
    at: Instant,
}

impl Rewriter {
    /// The next packet starts afresh, continuing from the last one sent.
    pub fn resync(&mut self) {
        self.resync = true;
    }

    /// The outgoing sequence number and timestamp for an incoming packet.
    pub fn rewrite(&mut self, ssrc: u32, seq: u16, ts: u32, now: Instant) -> (u16, u32) {
        if self.resync || self.source != Some(ssrc) {
            self.start_stretch(ssrc, seq, ts, now);
        }
        let out = (seq.wrapping_add(self.seq_offset), ts.wrapping_add(self.ts_offset));
        let newer = self.last.is_none_or(|last| is_newer(out.0, last.seq));
        if newer {
            self.last = Some(Sent {
                seq: out.0,
                ts: out.1,
                at: now,
            });
        }
        out
    }

    fn start_stretch(&mut self, ssrc: u32, seq: u16, ts: u32, now: Instant) {
        self.resync = false;
        self.source = Some(ssrc);
        let Some(last) = self.last else {
            // The first stretch goes out as it came.
            self.seq_offset = 0;
            self.ts_offset = 0;
            return;
        };
        let gap = now.saturating_duration_since(last.at).as_micros() as u64 * CLOCK_RATE / 1_000_000;
        let step = u32::try_from(gap).unwrap_or(u32::MAX).max(MIN_STEP);
        self.seq_offset = last.seq.wrapping_add(1).wrapping_sub(seq);
        self.ts_offset = last.ts.wrapping_add(step).wrapping_sub(ts);
    }
}

/// Whether sequence number `a` comes after `b`, allowing for wrap-around.
fn is_newer(a: u16, b: u16) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_first_source_passes_unchanged() {
        let mut r = Rewriter::default();
        let now = Instant::now();
        assert_eq!(r.rewrite(7, 100, 5000, now), (100, 5000));
        assert_eq!(r.rewrite(7, 101, 5960, now), (101, 5960));
    }

    #[test]
    fn a_new_source_continues_the_sequence_and_advances_the_clock() {
        let mut r = Rewriter::default();
        let t0 = Instant::now();
        r.rewrite(7, 65535, 1000, t0);
        // Another speaker, 100 ms later, with its own numbering.
        let t1 = t0 + Duration::from_millis(100);
        let (seq, ts) = r.rewrite(9, 40, 777_000, t1);
        assert_eq!(seq, 0, "wraps on from 65535");
        assert_eq!(ts, 1000 + 4800);
        // And it keeps its own spacing afterwards.
        assert_eq!(r.rewrite(9, 41, 777_960, t1), (1, 1000 + 4800 + 960));
    }

    #[test]
    fn a_resumed_stream_moves_on_by_at_least_one_frame() {
        let mut r = Rewriter::default();
        let t0 = Instant::now();
        r.rewrite(7, 10, 0, t0);
        r.resync();
        // The same source after a pause in which its packets were dropped.
        assert_eq!(r.rewrite(7, 500, 480_000, t0), (11, 960));
    }

    #[test]
    fn late_packets_keep_their_place() {
        let mut r = Rewriter::default();
        let t0 = Instant::now();
        r.rewrite(7, 10, 0, t0);
        r.rewrite(7, 12, 1920, t0);
        assert_eq!(r.rewrite(7, 11, 960, t0), (11, 960));
        // A resync continues after the highest one sent, not the late one.
        r.resync();
        assert_eq!(r.rewrite(8, 1, 0, t0).0, 13);
    }
}

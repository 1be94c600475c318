//! Pure bookkeeping of the messages in flight to the upstream broker: which row each QoS 1
//! packet id carries, and how far the cursor may move (over the unbroken prefix of
//! acknowledged rows, in publish order, so nothing unacknowledged is ever skipped).

use crate::store::{Cursor, Source};
use std::collections::{HashMap, VecDeque};

#[derive(Debug)]
struct Entry {
    source: Source,
    id: i64,
    acked: bool,
}

/// Rows published but not yet behind the cursor.
#[derive(Debug, Default)]
pub struct Window {
    /// In publish order.
    order: VecDeque<Entry>,
    /// Index into `order` (offset by `popped`) of entries handed to the client but not yet
    /// given a packet id.
    unsent: usize,
    popped: u64,
    by_pkid: HashMap<u16, u64>,
    /// Highest row per table that was published (next reads start after it).
    pub read: Cursor,
    /// Highest row per table behind an unbroken acknowledged prefix.
    pub acked: Cursor,
}

impl Window {
    pub fn new(cursor: Cursor) -> Self {
        Self {
            read: cursor,
            acked: cursor,
            ..Self::default()
        }
    }

    pub fn in_flight(&self) -> usize {
        self.order.len()
    }

    /// A row was queued for publishing.
    pub fn published(&mut self, source: Source, id: i64) {
        self.order.push_back(Entry {
            source,
            id,
            acked: false,
        });
        self.read.set(source, id);
    }

    /// The client sent the oldest unsent row with packet id `pkid`.
    pub fn sent(&mut self, pkid: u16) {
        let seq = self.popped + self.unsent as u64;
        self.by_pkid.insert(pkid, seq);
        self.unsent += 1;
    }

    /// The broker acknowledged `pkid`; `false` for an unknown packet id.
    pub fn acked(&mut self, pkid: u16) -> bool {
        let Some(seq) = self.by_pkid.remove(&pkid) else {
            return false;
        };
        if let Some(e) = self.order.get_mut((seq - self.popped) as usize) {
            e.acked = true;
        }
        while self.order.front().is_some_and(|e| e.acked) {
            if let Some(e) = self.order.pop_front() {
                self.acked.set(e.source, e.id);
                self.popped += 1;
                self.unsent = self.unsent.saturating_sub(1);
            }
        }
        true
    }

    /// The connection was lost: everything not acknowledged is read again from the store.
    pub fn reset(&mut self) {
        *self = Self::new(self.acked);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cursor moves only over an unbroken acknowledged prefix, and a reset rewinds reads.
    #[test]
    fn cursor_follows_the_acknowledged_prefix() {
        let mut w = Window::new(Cursor::default());
        for id in 1..=3 {
            w.published(Source::Telemetry, id);
        }
        w.published(Source::Incident, 1);
        for pkid in 10..14 {
            w.sent(pkid);
        }
        assert!(w.acked(11));
        assert_eq!(w.acked.telemetry, 0, "row 2 acked, row 1 not yet");
        assert!(w.acked(10));
        assert_eq!(w.acked.telemetry, 2);
        assert!(!w.acked(99), "unknown packet id");
        w.reset();
        assert_eq!(w.read.telemetry, 2, "row 3 will be read again");
        assert_eq!(w.read.incident, 0);
        assert_eq!(w.in_flight(), 0);
    }
}

//! Which devices are online: a device is online after a retained `online` or any message, and
//! offline after `offline` (its last will), when its connection ends, or when nothing arrived
//! within the staleness window. Transitions are reported to the caller, which stores and
//! pushes them.

use crate::model::DeviceId;
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    online: bool,
    last_seen_ms: i64,
}

/// Shared by `Arc`; all methods are short critical sections.
#[derive(Debug, Default)]
pub struct Presence {
    devices: Mutex<HashMap<DeviceId, Entry>>,
}

impl Presence {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<DeviceId, Entry>> {
        self.devices.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Something arrived from `device`; `true` if it was not online before.
    pub fn seen(&self, device: &DeviceId, ts_ms: i64) -> bool {
        let mut map = self.lock();
        let e = map.entry(device.clone()).or_insert(Entry {
            online: false,
            last_seen_ms: ts_ms,
        });
        e.last_seen_ms = e.last_seen_ms.max(ts_ms);
        !std::mem::replace(&mut e.online, true)
    }

    /// `device` is gone (last will, disconnect, removal); `true` if it was online.
    pub fn gone(&self, device: &DeviceId) -> bool {
        self.lock()
            .get_mut(device)
            .is_some_and(|e| std::mem::replace(&mut e.online, false))
    }

    pub fn is_online(&self, device: &DeviceId) -> bool {
        self.lock().get(device).is_some_and(|e| e.online)
    }

    /// Marks devices silent since before `cutoff_ms` offline and returns them.
    pub fn expire(&self, cutoff_ms: i64) -> Vec<DeviceId> {
        let mut out = Vec::new();
        for (id, e) in self.lock().iter_mut() {
            if e.online && e.last_seen_ms < cutoff_ms {
                e.online = false;
                out.push(id.clone());
            }
        }
        out
    }

    /// Online devices.
    pub fn online(&self) -> Vec<DeviceId> {
        let mut ids: Vec<DeviceId> = self
            .lock()
            .iter()
            .filter(|(_, e)| e.online)
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_are_reported_once() {
        let p = Presence::default();
        let d = DeviceId::parse("d").unwrap();
        assert!(!p.is_online(&d));
        assert!(p.seen(&d, 10));
        assert!(!p.seen(&d, 20));
        assert!(p.is_online(&d));
        assert!(p.expire(15).is_empty());
        assert_eq!(p.expire(21), vec![d.clone()]);
        assert!(!p.gone(&d));
        assert!(p.seen(&d, 30));
        assert!(p.gone(&d));
        assert!(p.online().is_empty());
    }
}

//! Topic grammar (pure): `<prefix>/<device>/<kind>` for what devices publish and
//! `<prefix>/<device>/command` for what they may subscribe to.

use crate::model::{DeviceId, Kind};

/// Last level of the one topic a device may subscribe to.
pub const COMMAND: &str = "command";

/// `(device, kind)` of a device topic, or `None` for anything else (wildcards included).
pub fn parse(prefix: &str, topic: &str) -> Option<(DeviceId, Kind)> {
    let mut levels = topic.split('/');
    let (Some(p), Some(dev), Some(kind), None) =
        (levels.next(), levels.next(), levels.next(), levels.next())
    else {
        return None;
    };
    if p != prefix {
        return None;
    }
    Some((DeviceId::parse(dev)?, Kind::parse(kind)?))
}

/// True when `device` may publish on `topic`: its own device level and a known kind.
pub fn may_publish(prefix: &str, device: &DeviceId, topic: &str) -> Option<Kind> {
    parse(prefix, topic).and_then(|(d, k)| (&d == device).then_some(k))
}

/// The command topic of `device`, the only filter it may subscribe to.
pub fn command_topic(prefix: &str, device: &DeviceId) -> String {
    format!("{prefix}/{device}/{COMMAND}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(s: &str) -> DeviceId {
        DeviceId::parse(s).unwrap()
    }

    #[test]
    fn parses_own_topics_only() {
        assert_eq!(
            parse("rz", "rz/esp32-1/telemetry"),
            Some((dev("esp32-1"), Kind::Telemetry))
        );
        for bad in [
            "rz/esp32-1/command",
            "rz/esp32-1",
            "rz/esp32-1/telemetry/x",
            "other/esp32-1/telemetry",
            "rz/+/telemetry",
            "rz/#",
            "rz//telemetry",
            "/rz/esp32-1/telemetry",
        ] {
            assert_eq!(parse("rz", bad), None, "{bad}");
        }
    }

    #[test]
    fn a_device_may_publish_as_itself_only() {
        let a = dev("a");
        assert_eq!(may_publish("rz", &a, "rz/a/status"), Some(Kind::Status));
        assert_eq!(may_publish("rz", &a, "rz/b/telemetry"), None);
        assert_eq!(command_topic("rz", &a), "rz/a/command");
    }
}

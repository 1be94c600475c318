//! Strict MQTT 3.1.1: every client-to-server packet is checked against the rules of the spec
//! that a client can break (reserved bits, fixed-header flags, field structure, UTF-8 strings,
//! packet identifiers, topic and filter syntax) before the gate parses or forwards it. A
//! violation names its rule (`MQTT-3.1.2-3`, ...); the gate closes the connection, logs and
//! counts it, and nothing of that packet reaches the broker. Works on the raw frame, so what
//! is checked is exactly what would be forwarded.

/// A broken rule: the spec's conformance number (or section) and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("[{rule}] {what}")]
pub struct Violation {
    pub rule: &'static str,
    pub what: String,
}

fn bad(rule: &'static str, what: impl Into<String>) -> Violation {
    Violation {
        rule,
        what: what.into(),
    }
}

/// Checks one complete frame (fixed header, remaining length, body) as read by `frame`.
pub fn check(raw: &[u8]) -> Result<(), Violation> {
    let first = *raw.first().ok_or_else(|| bad("MQTT-2.2", "empty packet"))?;
    let body = body(raw)?;
    let (kind, flags) = (first >> 4, first & 0x0f);
    let mut r = Reader { b: body, pos: 0 };
    match kind {
        1 => {
            fixed_flags(flags, 0, "MQTT-2.2.2-2", "CONNECT")?;
            connect(&mut r)?;
        }
        3 => publish(flags, &mut r)?,
        4 | 5 | 7 => {
            let name = ["PUBACK", "PUBREC", "", "PUBCOMP"][usize::from(kind - 4)];
            fixed_flags(flags, 0, "MQTT-2.2.2-2", name)?;
            ack(&mut r, name)?;
        }
        6 => {
            fixed_flags(flags, 0b0010, "MQTT-3.6.1-1", "PUBREL")?;
            ack(&mut r, "PUBREL")?;
        }
        8 => {
            fixed_flags(flags, 0b0010, "MQTT-3.8.1-1", "SUBSCRIBE")?;
            subscribe(&mut r)?;
        }
        10 => {
            fixed_flags(flags, 0b0010, "MQTT-3.10.1-1", "UNSUBSCRIBE")?;
            unsubscribe(&mut r)?;
        }
        12 | 14 => {
            let (name, rule) = if kind == 12 {
                ("PINGREQ", "MQTT-2.2.2-2")
            } else {
                ("DISCONNECT", "MQTT-3.14.1-1")
            };
            fixed_flags(flags, 0, rule, name)?;
        }
        2 | 9 | 11 | 13 => {
            return Err(bad(
                "MQTT-2.2.1",
                "a client sent a packet only a server may send",
            ));
        }
        _ => return Err(bad("MQTT-2.2.1", format!("reserved packet type {kind}"))),
    }
    r.end()
}

/// The body after the fixed header; the frame reader already matched its length.
fn body(raw: &[u8]) -> Result<&[u8], Violation> {
    let mut len = 0usize;
    for (i, b) in raw.iter().skip(1).take(4).enumerate() {
        len |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            let start = 2 + i;
            return raw
                .get(start..start + len)
                .filter(|b| b.len() + start == raw.len())
                .ok_or_else(|| bad("MQTT-2.2.3", "remaining length does not match the packet"));
        }
    }
    Err(bad("MQTT-2.2.3", "remaining length longer than four bytes"))
}

fn fixed_flags(got: u8, want: u8, rule: &'static str, name: &str) -> Result<(), Violation> {
    if got == want {
        Ok(())
    } else {
        Err(bad(
            rule,
            format!("{name} fixed-header flags must be {want:#06b}, got {got:#06b}"),
        ))
    }
}

fn connect(r: &mut Reader) -> Result<(), Violation> {
    let name = r.string("protocol name")?;
    if name != "MQTT" {
        return Err(bad(
            "MQTT-3.1.2-1",
            format!("protocol name must be \"MQTT\", got {name:?}"),
        ));
    }
    let level = r.u8("protocol level")?;
    if level != 4 {
        return Err(bad(
            "MQTT-3.1.2-2",
            format!("protocol level {level} is not 4 (MQTT 3.1.1)"),
        ));
    }
    let flags = r.u8("connect flags")?;
    if flags & 0x01 != 0 {
        return Err(bad("MQTT-3.1.2-3", "reserved connect flag (bit 0) is set"));
    }
    let will = flags & 0x04 != 0;
    let will_qos = (flags >> 3) & 0x03;
    let will_retain = flags & 0x20 != 0;
    let (password, username) = (flags & 0x40 != 0, flags & 0x80 != 0);
    if !will && will_qos != 0 {
        return Err(bad("MQTT-3.1.2-13", "will QoS set without the will flag"));
    }
    if !will && will_retain {
        return Err(bad(
            "MQTT-3.1.2-15",
            "will retain set without the will flag",
        ));
    }
    if will_qos == 3 {
        return Err(bad("MQTT-3.1.2-14", "will QoS 3"));
    }
    if password && !username {
        return Err(bad(
            "MQTT-3.1.2-22",
            "password flag set without the user name flag",
        ));
    }
    r.u16("keep alive")?;
    r.string("client identifier")?;
    if will {
        topic_name(&r.string("will topic")?)?;
        r.binary("will message")?;
    }
    if username {
        r.string("user name")?;
    }
    if password {
        r.binary("password")?;
    }
    Ok(())
}

fn publish(flags: u8, r: &mut Reader) -> Result<(), Violation> {
    let (dup, qos) = (flags & 0x08 != 0, (flags >> 1) & 0x03);
    if qos == 3 {
        return Err(bad("MQTT-3.3.1-4", "PUBLISH with QoS 3"));
    }
    if qos == 0 && dup {
        return Err(bad("MQTT-3.3.1-2", "DUP flag set on a QoS 0 PUBLISH"));
    }
    topic_name(&r.string("topic name")?)?;
    if qos > 0 {
        packet_id(r)?;
    }
    r.pos = r.b.len(); // the payload is the application's
    Ok(())
}

fn ack(r: &mut Reader, name: &str) -> Result<(), Violation> {
    if r.b.len() != 2 {
        return Err(bad(
            "MQTT-3.4.2",
            format!(
                "{name} must have a remaining length of 2, got {}",
                r.b.len()
            ),
        ));
    }
    packet_id(r)
}

fn subscribe(r: &mut Reader) -> Result<(), Violation> {
    packet_id(r)?;
    if r.remaining() == 0 {
        return Err(bad("MQTT-3.8.3-3", "SUBSCRIBE without a topic filter"));
    }
    while r.remaining() > 0 {
        topic_filter(&r.string("topic filter")?)?;
        let options = r.u8("requested QoS")?;
        if options & 0xfc != 0 || options & 0x03 == 3 {
            return Err(bad(
                "MQTT-3.8.3-4",
                format!("requested QoS byte {options:#04x} is not 0, 1 or 2"),
            ));
        }
    }
    Ok(())
}

fn unsubscribe(r: &mut Reader) -> Result<(), Violation> {
    packet_id(r)?;
    if r.remaining() == 0 {
        return Err(bad("MQTT-3.10.3-2", "UNSUBSCRIBE without a topic filter"));
    }
    while r.remaining() > 0 {
        topic_filter(&r.string("topic filter")?)?;
    }
    Ok(())
}

fn packet_id(r: &mut Reader) -> Result<(), Violation> {
    if r.u16("packet identifier")? == 0 {
        return Err(bad("MQTT-2.3.1-1", "packet identifier 0"));
    }
    Ok(())
}

/// Topic names: at least one character, no wildcards.
fn topic_name(t: &str) -> Result<(), Violation> {
    if t.is_empty() {
        return Err(bad("MQTT-4.7.3-1", "empty topic name"));
    }
    if t.contains(['+', '#']) {
        return Err(bad("MQTT-3.3.2-2", format!("wildcard in topic name {t:?}")));
    }
    Ok(())
}

/// Topic filters: at least one character, `#` only as the whole last level, `+` only as a
/// whole level.
fn topic_filter(f: &str) -> Result<(), Violation> {
    if f.is_empty() {
        return Err(bad("MQTT-4.7.3-1", "empty topic filter"));
    }
    let levels: Vec<&str> = f.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
            return Err(bad("MQTT-4.7.1-2", format!("misplaced # in filter {f:?}")));
        }
        if level.contains('+') && *level != "+" {
            return Err(bad("MQTT-4.7.1-3", format!("misplaced + in filter {f:?}")));
        }
    }
    Ok(())
}

/// A cursor over a packet body; every read is bounds-checked.
struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn remaining(&self) -> usize {
        self.b.len() - self.pos
    }

    fn take(&mut self, n: usize, field: &str) -> Result<&[u8], Violation> {
        let end = self.pos + n;
        let out = self
            .b
            .get(self.pos..end)
            .ok_or_else(|| bad("MQTT-1.5", format!("packet ends inside the {field}")))?;
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self, field: &str) -> Result<u8, Violation> {
        Ok(self.take(1, field)?[0])
    }

    fn u16(&mut self, field: &str) -> Result<u16, Violation> {
        let b = self.take(2, field)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn binary(&mut self, field: &str) -> Result<&[u8], Violation> {
        let n = self.u16(field)?;
        self.take(usize::from(n), field)
    }

    /// A UTF-8 string field: well-formed (MQTT-1.5.3-1), no U+0000 (MQTT-1.5.3-2), and like
    /// Mosquitto we also refuse the control characters and non-characters the spec says
    /// SHOULD NOT appear (1.5.3, the receiver MAY close).
    fn string(&mut self, field: &str) -> Result<String, Violation> {
        let bytes = self.binary(field)?;
        let s = std::str::from_utf8(bytes)
            .map_err(|_| bad("MQTT-1.5.3-1", format!("{field} is not well-formed UTF-8")))?;
        if s.contains('\0') {
            return Err(bad("MQTT-1.5.3-2", format!("{field} contains U+0000")));
        }
        if let Some(c) = s.chars().find(|c| forbidden_char(*c)) {
            return Err(bad(
                "MQTT-1.5.3",
                format!("{field} contains U+{:04X}", u32::from(c)),
            ));
        }
        Ok(s.to_owned())
    }

    fn end(&self) -> Result<(), Violation> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(bad(
                "MQTT-2.2.3",
                format!(
                    "{} unexpected bytes after the packet's fields",
                    self.remaining()
                ),
            ))
        }
    }
}

fn forbidden_char(c: char) -> bool {
    let n = u32::from(c);
    matches!(n, 0x01..=0x1f | 0x7f..=0x9f | 0xfdd0..=0xfdef) || n & 0xfffe == 0xfffe
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(first: u8, body: &[u8]) -> Vec<u8> {
        assert!(body.len() < 128);
        let mut v = vec![first, body.len() as u8];
        v.extend_from_slice(body);
        v
    }

    fn connect_body(flags: u8) -> Vec<u8> {
        let mut b = vec![0, 4, b'M', b'Q', b'T', b'T', 4, flags, 0, 60, 0, 1, b'a'];
        if flags & 0x80 != 0 {
            b.extend([0, 1, b'u']);
        }
        if flags & 0x40 != 0 {
            b.extend([0, 1, b'p']);
        }
        b
    }

    #[test]
    fn the_three_reported_cases_are_violations() {
        let rule = |raw: &[u8]| check(raw).unwrap_err().rule;
        assert_eq!(rule(&frame(0x10, &connect_body(0xc3))), "MQTT-3.1.2-3");
        assert_eq!(rule(&frame(0x18, &connect_body(0xc2))), "MQTT-2.2.2-2");
        let mut p = vec![0, 3, b'a', b'/', b'b'];
        p.extend(b"{}");
        assert_eq!(rule(&frame(0x38, &p)), "MQTT-3.3.1-2");
        assert!(check(&frame(0x30, &p)).is_ok());
        assert!(check(&frame(0x10, &connect_body(0xc2))).is_ok());
    }

    #[test]
    fn filters_and_strings() {
        assert!(topic_filter("rz/+/command").is_ok());
        assert!(topic_filter("#").is_ok());
        assert!(topic_filter("rz/#/x").is_err());
        assert!(topic_filter("rz/a+").is_err());
        assert!(forbidden_char('\u{ffff}') && forbidden_char('\u{1f}'));
        assert!(!forbidden_char('\u{2a6d4}') && !forbidden_char('é'));
        // UNSUBSCRIBE without filters; SUBSCRIBE with QoS 3.
        assert_eq!(
            check(&frame(0xa2, &[0, 1])).unwrap_err().rule,
            "MQTT-3.10.3-2"
        );
        assert_eq!(
            check(&frame(0x82, &[0, 1, 0, 1, b'a', 3]))
                .unwrap_err()
                .rule,
            "MQTT-3.8.3-4"
        );
    }
}

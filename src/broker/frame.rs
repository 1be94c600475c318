//! Reading one MQTT 3.1.1 packet from a socket with rumqttc's codec, keeping the raw bytes so
//! the gate can forward them unchanged.

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4::Packet;
use rumqttc::mqttbytes::{Error as CodecError, check};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Why reading a packet failed.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("packet of {0} bytes exceeds the limit of {1} bytes")]
    TooLarge(usize, usize),
    #[error("MQTT protocol violation {0}")]
    Strict(#[from] super::strict::Violation),
    #[error("malformed MQTT packet: {0:?}")]
    Malformed(CodecError),
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads the next device packet, checked by `strict` and parsed; `Ok(None)` on a clean end of
/// stream between packets. Cancel-safe: a partial packet stays in `buf`.
pub async fn read<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
    max: usize,
) -> Result<Option<(Packet, Bytes)>, FrameError> {
    let Some(raw) = read_raw(r, buf, max).await? else {
        return Ok(None);
    };
    super::strict::check(&raw)?;
    let mut copy = BytesMut::from(&raw[..]);
    let packet = Packet::read(&mut copy, max).map_err(FrameError::Malformed)?;
    Ok(Some((packet, raw)))
}

/// Reads the bytes of the next packet without checking its contents (for the broker's
/// packets to a device, which the gate only needs to keep whole). Cancel-safe.
pub async fn read_raw<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
    max: usize,
) -> Result<Option<Bytes>, FrameError> {
    loop {
        match check(buf.iter(), max) {
            Ok(header) => {
                let len = header.frame_length();
                if len > max {
                    return Err(FrameError::TooLarge(len, max));
                }
                return Ok(Some(buf.split_to(len).freeze()));
            }
            Err(CodecError::InsufficientBytes(n)) => {
                buf.reserve(n.min(max));
                if r.read_buf(buf).await? == 0 {
                    return if buf.is_empty() {
                        Ok(None)
                    } else {
                        Err(FrameError::Io(std::io::ErrorKind::UnexpectedEof.into()))
                    };
                }
            }
            Err(CodecError::PayloadSizeLimitExceeded(n)) => {
                return Err(FrameError::TooLarge(n, max));
            }
            Err(e) => return Err(FrameError::Malformed(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::mqttbytes::QoS;
    use rumqttc::mqttbytes::v4::Publish;

    fn encoded(p: &Packet) -> Vec<u8> {
        let mut b = BytesMut::new();
        p.write(&mut b, 1 << 20).unwrap();
        b.to_vec()
    }

    #[tokio::test]
    async fn reads_packets_split_across_reads_and_keeps_raw_bytes() {
        let mut publish = Publish::new("rz/a/telemetry", QoS::AtLeastOnce, vec![b'x'; 300]);
        publish.pkid = 1;
        let p = Packet::Publish(publish);
        let mut bytes = encoded(&p);
        bytes.extend(encoded(&Packet::PingReq));
        let mut r = tokio_test_reader(bytes.clone());
        let mut buf = BytesMut::new();
        let (got, raw) = read(&mut r, &mut buf, 16_384).await.unwrap().unwrap();
        assert_eq!(got, p);
        assert_eq!(&raw[..], &bytes[..raw.len()]);
        let (got, _) = read(&mut r, &mut buf, 16_384).await.unwrap().unwrap();
        assert_eq!(got, Packet::PingReq);
        assert!(read(&mut r, &mut buf, 16_384).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn oversize_and_garbage_are_errors() {
        let p = Packet::Publish(Publish::new(
            "rz/a/telemetry",
            QoS::AtMostOnce,
            vec![0u8; 2000],
        ));
        let mut buf = BytesMut::new();
        let r = read(&mut tokio_test_reader(encoded(&p)), &mut buf, 1024).await;
        assert!(matches!(r, Err(FrameError::TooLarge(..))), "{r:?}");
        let mut buf = BytesMut::new();
        let r = read(&mut tokio_test_reader(vec![0xff; 8]), &mut buf, 1024).await;
        assert!(matches!(r, Err(FrameError::Malformed(_))), "{r:?}");
    }

    /// A reader that returns its bytes in 7-byte pieces.
    fn tokio_test_reader(bytes: Vec<u8>) -> impl AsyncRead + Unpin {
        let chunks: Vec<Vec<u8>> = bytes.chunks(7).map(<[u8]>::to_vec).collect();
        let stream = futures_util::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, std::io::Error>(Bytes::from(c))),
        );
        tokio_util::io::StreamReader::new(stream)
    }
}

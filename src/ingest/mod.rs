//! Link → decode → store writer + hub. INTERFACE STUB written by the lead: the broker helper
//! replaces the body (decode.rs holds the pure, unit-tested payload decoding).

use crate::broker::Link;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::model::Message;
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

/// Consumes the broker's local link until `shutdown`: valid messages go to `writer` and `hub`;
/// invalid ones are logged with the device id and reason and counted.
pub async fn run(
    link: Link,
    prefix: String,
    writer: UnboundedSender<Message>,
    hub: Hub,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let _ = (link, prefix, writer, hub, metrics, shutdown);
    unimplemented!()
}

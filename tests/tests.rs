//! The one integration-test binary: real `rzmon` processes driven over HTTP, MQTT and WebSocket.

mod util;
mod api;

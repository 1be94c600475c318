//! Delivery of alert notices to the outside world (ntfy, Gotify, webhook, SMTP, Telegram,
//! Discord/Slack): a persisted outbox, one worker per channel, retries, grouping, storm cap and
//! quiet hours. `alerts` hands it [`Notice`]s; nothing below `alerts` imports this module.

pub mod notice;

pub use notice::{Notice, NoticeKind, Severity};

//! Everything that leaves the agent as an alert or a message, in one place.
//!
//! Detection (anomalies), checks and healing (give-ups, verdicts) hand a
//! [`Message`] to the [`Notifier`]; it never blocks them (`try_send` into
//! one bounded queue). The notifier's task groups what arrives within
//! `group_wait` into one post per receiver, holds each receiver to
//! `max_posts_per_minute` (what waits is merged into the next post), and
//! retries failed posts with the one [`Backoff`] of the agent. A message
//! can also be delivered to one receiver at once, with its result
//! (a ladder's alert rung, `aegis notify test`).
//!
//! - [`message`]: what is said.
//! - [`alertmanager`]: the Alertmanager payload, built only here.
//! - [`receiver`]: the kinds of receiver, and how each posts.
//! - [`chat`], [`push`], [`email`]: the payloads of Slack-compatible
//!   webhooks, Discord and Teams; of ntfy and Gotify; email over SMTP.
//! - [`text`]: a message as words for people, shared by all of them.
//!
//! [`Backoff`]: aegis_core::backoff::Backoff

pub mod alertmanager;
pub mod chat;
mod dispatch;
pub mod email;
pub mod message;
pub mod push;
pub mod receiver;
pub mod text;

pub use dispatch::{
    host_name, new, start, Delivery, Notifier, NotifierConfig, NotifierTask, Reconfigured,
};
pub use message::{Event, Message};
pub use receiver::{Receiver, ReceiverKind};

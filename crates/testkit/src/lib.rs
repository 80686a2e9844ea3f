//! Helpers the tests of every crate share (never a dependency of the
//! product): what a test waits for is a condition with a deadline and a
//! message, never a fixed sleep; what a test needs from the machine (a
//! Redis server, a Docker engine, Chromium) is asked for by name and the
//! test is skipped, saying why, when it is missing, unless the run requires
//! everything (`AEGIS_REQUIRE_ALL=1`, which `scripts/test.sh` sets).
//!
//! - [`wait`]: `wait_until(deadline, what, condition)`.
//! - [`http`]: a scriptable HTTP/1.1 stub server and a tiny client.
//! - [`process`]: child-process guards and real servers on free ports.
//! - [`need`]: external dependencies and skips.

pub mod docker;
pub mod http;
pub mod need;
pub mod podman;
pub mod process;
pub mod wait;

pub use http::{http_get, http_request, HttpStub, Recorded, Reply};
pub use need::{chromium, need, need_docker, need_root, require_all, skip, which};
pub use process::{accepts, free_port, memcached, redis, ChildGuard, Server};
pub use wait::{wait_until, wait_until_async, within};

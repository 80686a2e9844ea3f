//! Publishing trained models atomically.
//!
//! A model is trained off the pipeline, then published whole into a
//! [`ModelSlot`] as a new version. Readers take an `Arc` of the current
//! version and keep scoring with it while the next one trains; nothing can
//! ever see a model that is partly built, because a model is only reachable
//! once it is complete and immutable.

use std::sync::{Arc, RwLock};

/// A model and its version (1, 2, ... in publication order).
#[derive(Debug)]
pub struct Published<T> {
    /// Version number.
    pub version: u64,
    /// The model.
    pub model: T,
}

/// Where the current model lives; cloning shares the slot.
#[derive(Debug)]
pub struct ModelSlot<T> {
    inner: Arc<RwLock<Option<Arc<Published<T>>>>>,
}

impl<T> Clone for ModelSlot<T> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T> Default for ModelSlot<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> ModelSlot<T> {
    /// An empty slot.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(RwLock::new(None)),
        }
    }

    /// The current model, if one was published. The lock is held only to
    /// clone the `Arc`.
    pub fn current(&self) -> Option<Arc<Published<T>>> {
        match self.inner.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Publishes a complete model as the next version; returns that version.
    pub fn publish(&self, model: T) -> u64 {
        let mut guard = match self.inner.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let version = guard.as_ref().map_or(1, |p| p.version + 1);
        *guard = Some(Arc::new(Published { version, model }));
        version
    }
}

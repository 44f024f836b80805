//! The request-scoped HTTP service (see the crate README).

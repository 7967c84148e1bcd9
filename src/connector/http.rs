//! The shared HTTP client. (Being written.)

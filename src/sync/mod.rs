//! Import jobs. (Being written.)

//! Pagination guards. (Being written.)

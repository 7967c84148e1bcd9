//! Target simulators. (Being written.)

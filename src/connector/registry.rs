//! Builds the connector of each configured target. (Being written.)

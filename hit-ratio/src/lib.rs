//! okome-hit-ratio (being built).

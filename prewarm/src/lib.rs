//! okome-prewarm (being built).

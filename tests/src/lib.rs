//! The loopback lab (being built).

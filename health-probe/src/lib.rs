//! okome-health-probe (being built).

//! nginx access-log reading and parsing (being built in the hit-ratio issue).

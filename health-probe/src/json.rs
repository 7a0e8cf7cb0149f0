//! A minimal JSON object writer for `--json`.
//!
//! The probe prints one small flat-ish object per run; a dozen lines here
//! spare the binary serde's machinery. Tests parse the output with
//! serde_json to prove it is valid JSON.

use std::fmt::Write as _;

/// Builds one JSON object, keys in insertion order.
#[derive(Debug, Default)]
pub struct Object {
    text: String,
}

impl Object {
    /// An empty object.
    pub fn new() -> Object {
        Object::default()
    }

    fn key(&mut self, key: &str) {
        self.text.push(if self.text.is_empty() { '{' } else { ',' });
        self.text.push_str(&string(key));
        self.text.push(':');
    }

    /// A string member.
    pub fn str(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key);
        self.text.push_str(&string(value));
        self
    }

    /// A number member; non-finite numbers become `null`.
    pub fn num(&mut self, key: &str, value: f64) -> &mut Self {
        self.key(key);
        if value.is_finite() {
            let _ = write!(self.text, "{value}");
        } else {
            self.text.push_str("null");
        }
        self
    }

    /// A boolean member.
    pub fn bool(&mut self, key: &str, value: bool) -> &mut Self {
        self.key(key);
        self.text.push_str(if value { "true" } else { "false" });
        self
    }

    /// A member whose value is already JSON (an object, array or `null`).
    pub fn raw(&mut self, key: &str, json: &str) -> &mut Self {
        self.key(key);
        self.text.push_str(json);
        self
    }

    /// The finished object.
    pub fn finish(&self) -> String {
        if self.text.is_empty() {
            "{}".into()
        } else {
            format!("{}}}", self.text)
        }
    }
}

/// `value` as a JSON string literal.
pub fn string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON array of already-encoded values.
pub fn array(items: &[String]) -> String {
    format!("[{}]", items.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_valid_json_with_escapes() {
        let mut inner = Object::new();
        inner.bool("ok", false).num("inf", f64::INFINITY);
        let mut object = Object::new();
        object
            .str("s", "a\"b\\c\n\u{1}é")
            .num("n", 1.5)
            .raw("a", &array(&[inner.finish(), "null".into()]));
        let parsed: serde_json::Value = serde_json::from_str(&object.finish()).unwrap();
        assert_eq!(parsed["s"], "a\"b\\c\n\u{1}é");
        assert_eq!(parsed["n"], 1.5);
        assert_eq!(parsed["a"][0]["ok"], false);
        assert!(parsed["a"][0]["inf"].is_null());
        assert_eq!(Object::new().finish(), "{}");
    }
}

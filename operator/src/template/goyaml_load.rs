//! Loader half: what `sigs.k8s.io/yaml.Unmarshal` into `interface{}` yields
//! (yaml.v2 decode, key stringification, `json.Marshal`, JSON decode).

use std::collections::HashMap;
use std::rc::Rc;

use granit_parser::{ErrorKind, Event, Options, Parser, ScalarStyle, ScanError};
use serde_json::Value;

use super::goyaml::{Resolved, go_format_g, go_json_float, resolve_value};
use super::goyaml_emit::is_forbidden_input_char;

const PREFIX: &str = "error converting YAML to JSON: ";
const CORE: &str = "tag:yaml.org,2002:";
const STR_TAG: &str = "tag:yaml.org,2002:str";
const BINARY_TAG: &str = "tag:yaml.org,2002:binary";
const MERGE_TAG: &str = "tag:yaml.org,2002:merge";

enum YNode {
    Scalar {
        value: String,
        tag: String,
        plain: bool,
    },
    Seq(Vec<Rc<YNode>>),
    Map(Vec<Rc<YNode>>),
    Alias {
        name: String,
        target: Option<Rc<YNode>>,
    },
}

/// Decode the first YAML document of `text` as `sigs.k8s.io/yaml.Unmarshal`
/// into an `interface{}` would, returned as the JSON value Go would produce.
/// An empty stream gives `null`.
pub fn from_yaml(text: &str) -> Result<Value, String> {
    if text.chars().any(is_forbidden_input_char) {
        return Err(format!("{PREFIX}yaml: control characters are not allowed"));
    }
    let root = parse_first(text).map_err(|e| format!("{PREFIX}yaml: {e}"))?;
    let Some(root) = root else {
        return Ok(Value::Null);
    };
    let mut d = Decoder::default();
    let v = d
        .unmarshal(&root)
        .map_err(|e| format!("{PREFIX}yaml: {e}"))?;
    to_json(v).map_err(|e| format!("{PREFIX}{e}"))
}

/// Decode every document of a stream as `k8s.io/apimachinery` `YAMLOrJSONDecoder`
/// (as used by fluxcd `ssa/utils.ReadObjects`) does: a stream whose first
/// non-space byte is `{` is read as concatenated JSON values; otherwise the
/// text is split on lines starting with `---` and each chunk decoded with
/// [`from_yaml`]. Documents that decode to `null` (empty, comments only) are
/// skipped.
pub fn from_yaml_documents(text: &str) -> Result<Vec<Value>, String> {
    let mut docs = Vec::new();
    let mut rest = text;
    if text.trim_start().starts_with('{') {
        let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
        let mut count = 0;
        loop {
            match stream.next() {
                None => return Ok(docs),
                Some(Ok(v)) => {
                    count += 1;
                    if !v.is_null() {
                        docs.push(v);
                    }
                }
                Some(Err(e)) => {
                    if count > 1 {
                        return Err(e.to_string());
                    }
                    break;
                }
            }
        }
        // Fall back to YAML for whatever the JSON decoder did not consume.
        let consumed = stream.byte_offset().min(text.len());
        rest = &text[consumed..];
        if count == 0 {
            rest = text;
        }
    }
    for chunk in split_documents(rest)? {
        let v = from_yaml(&chunk)?;
        if !v.is_null() {
            docs.push(v);
        }
    }
    Ok(docs)
}

fn split_documents(text: &str) -> Result<Vec<String>, String> {
    let mut chunks = Vec::new();
    let mut buf = String::new();
    let mut lines: Vec<&str> = text.split('\n').collect();
    if lines.last() == Some(&"") {
        lines.pop();
    }
    for line in lines {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if let Some(after) = line.strip_prefix("---") {
            let trimmed = after.trim();
            if !trimmed.is_empty() && !trimmed.starts_with('#') {
                return Err(format!("invalid Yaml document separator: {trimmed}"));
            }
            if !buf.is_empty() {
                chunks.push(std::mem::take(&mut buf));
            }
        }
        buf.push_str(line);
        buf.push('\n');
    }
    if !buf.is_empty() {
        chunks.push(buf);
    }
    Ok(chunks)
}

enum Frame {
    Seq(usize, Vec<Rc<YNode>>),
    Map(usize, Vec<Rc<YNode>>),
}

fn parse_first(text: &str) -> Result<Option<Rc<YNode>>, String> {
    let mut opts = Options::default();
    opts.emit_comments = false;
    opts.emit_anchor_events = true;
    opts.emit_unresolved_aliases = true;
    opts.block_scalar_eof_without_line_feed = true;
    opts.bom_inside_document_as_content = true;
    let parser = Parser::new_from_str_with_options(text, opts);
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, Rc<YNode>> = HashMap::new();
    let mut names: HashMap<usize, String> = HashMap::new();
    let mut pending_anchor: Option<(usize, Rc<YNode>)> = None;
    let mut root: Option<Rc<YNode>> = None;
    let mut in_doc = false;
    for ev in parser {
        let (ev, _span) = ev.map_err(|e| scan_error(&e, text))?;
        let mut done: Option<Rc<YNode>> = None;
        match ev {
            Event::DocumentStart(..) => in_doc = true,
            Event::DocumentEnd | Event::StreamEnd if in_doc || root.is_some() => break,
            Event::Anchor(id, name) => {
                names.insert(id, name.into_owned());
            }
            Event::Alias(id) => {
                let name = names.get(&id).cloned().unwrap_or_default();
                done = Some(Rc::new(YNode::Alias {
                    name,
                    target: anchors.get(&id).cloned(),
                }));
            }
            Event::UnresolvedAlias(name) => {
                return Err(format!("unknown anchor '{name}' referenced"));
            }
            Event::Scalar(value, style, anchor, tag) => {
                let tag = tag
                    .map(|t| format!("{}{}", t.handle(), t.suffix()))
                    .unwrap_or_default();
                let n = Rc::new(YNode::Scalar {
                    value: value.into_owned(),
                    tag,
                    plain: style == ScalarStyle::Plain,
                });
                if anchor != 0 {
                    pending_anchor = Some((anchor, n.clone()));
                }
                done = Some(n);
            }
            Event::SequenceStart(_, anchor, _) => stack.push(Frame::Seq(anchor, Vec::new())),
            Event::MappingStart(_, anchor, _) => stack.push(Frame::Map(anchor, Vec::new())),
            Event::SequenceEnd | Event::MappingEnd => {
                let (anchor, n) = match stack.pop() {
                    Some(Frame::Seq(a, items)) => (a, YNode::Seq(items)),
                    Some(Frame::Map(a, items)) => (a, YNode::Map(items)),
                    None => return Err("unexpected collection end".into()),
                };
                let n = Rc::new(n);
                if anchor != 0 {
                    anchors.insert(anchor, n.clone());
                }
                done = Some(n);
            }
            _ => {}
        }
        if let Some((id, n)) = pending_anchor.take() {
            anchors.insert(id, n);
        }
        if let Some(n) = done {
            match stack.last_mut() {
                Some(Frame::Seq(_, items) | Frame::Map(_, items)) => items.push(n),
                None => root = Some(n),
            }
        }
    }
    Ok(root)
}

fn scan_error(e: &ScanError, text: &str) -> String {
    let mut line = e.marker().line();
    // libyaml reports these at the end of the input.
    let eof_line = text.matches('\n').count() + 1;
    // libyaml reports scanner errors 1-based and parser errors 0-based.
    let (msg, parser_error): (String, bool) = match e.kind() {
        ErrorKind::MappingValueNotAllowed | ErrorKind::InvalidMappingValueWhitespace => (
            "mapping values are not allowed in this context".into(),
            false,
        ),
        ErrorKind::ExpectedBlockMappingKey | ErrorKind::UnexpectedEofBlockMapping => {
            ("did not find expected key".into(), true)
        }
        ErrorKind::ExpectedBlockSequenceEntry | ErrorKind::UnexpectedEofBlockSequence => {
            ("did not find expected '-' indicator".into(), true)
        }
        ErrorKind::ExpectedFlowSequenceSeparator | ErrorKind::UnexpectedEofFlowSequence => {
            ("did not find expected ',' or ']'".into(), true)
        }
        ErrorKind::ExpectedFlowMappingSeparator | ErrorKind::UnexpectedEofFlowMapping => {
            ("did not find expected ',' or '}'".into(), true)
        }
        ErrorKind::ExpectedNodeContent => ("did not find expected node content".into(), true),
        ErrorKind::UnclosedQuotedScalar => {
            line = eof_line;
            ("found unexpected end of stream".into(), false)
        }
        ErrorKind::UnclosedFlowCollection { .. } => {
            line = eof_line;
            ("did not find expected node content".into(), true)
        }
        ErrorKind::InvalidColonPlacement => ("did not find expected ',' or ']'".into(), true),
        ErrorKind::SimpleKeyExpected => ("could not find expected ':'".into(), false),
        ErrorKind::TabInIndentation
        | ErrorKind::TabNotAllowed
        | ErrorKind::TabInBlockIndentation
        | ErrorKind::UnexpectedCharacter { .. } => {
            ("found character that cannot start any token".into(), false)
        }
        ErrorKind::UnknownQuotedScalarEscape => ("found unknown escape character".into(), false),
        ErrorKind::UndeclaredTagHandle => ("found undefined tag handle".into(), true),
        _ => (e.info(), false),
    };
    // Go prints nothing when the 0-based line is 0, else 1-based for scanner
    // errors and 0-based for parser errors.
    let zero_based = line.saturating_sub(1);
    let shown = if parser_error { zero_based } else { line };
    if zero_based == 0 {
        msg
    } else {
        format!("line {shown}: {msg}")
    }
}

#[derive(Debug, Clone)]
enum GoVal {
    Nil,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(String),
    Seq(Vec<GoVal>),
    Map(Vec<(GoVal, GoVal)>),
}

impl GoVal {
    fn same_key(&self, other: &GoVal) -> bool {
        match (self, other) {
            (GoVal::Nil, GoVal::Nil) => true,
            (GoVal::Bool(a), GoVal::Bool(b)) => a == b,
            (GoVal::Int(a), GoVal::Int(b)) => a == b,
            (GoVal::Uint(a), GoVal::Uint(b)) => a == b,
            (GoVal::Float(a), GoVal::Float(b)) => a == b,
            (GoVal::Str(a), GoVal::Str(b)) => a == b,
            _ => false,
        }
    }

    fn go_repr(&self) -> String {
        match self {
            GoVal::Nil => "<nil>".into(),
            GoVal::Bool(b) => b.to_string(),
            GoVal::Int(i) => i.to_string(),
            GoVal::Uint(u) => format!("0x{u:x}"),
            GoVal::Float(f) => go_format_g(*f, false),
            GoVal::Str(s) => format!("{s:?}"),
            GoVal::Seq(items) => {
                let inner: Vec<String> = items.iter().map(GoVal::go_elem_repr).collect();
                format!("[]interface {{}}{{{}}}", inner.join(", "))
            }
            GoVal::Map(items) => {
                let mut inner: Vec<(String, String)> = items
                    .iter()
                    .map(|(k, v)| (k.go_elem_repr(), v.go_elem_repr()))
                    .collect();
                inner.sort();
                let inner: Vec<String> =
                    inner.into_iter().map(|(k, v)| format!("{k}:{v}")).collect();
                format!("map[interface {{}}]interface {{}}{{{}}}", inner.join(", "))
            }
        }
    }
}

impl GoVal {
    /// `%#v` of a value stored in an `interface{}` slot.
    fn go_elem_repr(&self) -> String {
        match self {
            GoVal::Nil => "interface {}(nil)".into(),
            _ => self.go_repr(),
        }
    }
}

fn set_key(out: &mut Vec<(GoVal, GoVal)>, k: GoVal, v: GoVal) {
    if let Some(slot) = out.iter_mut().find(|(ek, _)| ek.same_key(&k)) {
        slot.1 = v;
    } else {
        out.push((k, v));
    }
}

#[derive(Default)]
struct Decoder {
    active: Vec<*const YNode>,
    decode_count: usize,
    alias_count: usize,
    alias_depth: usize,
}

fn allowed_alias_ratio(decode_count: usize) -> f64 {
    const LOW: usize = 400_000;
    const HIGH: usize = 4_000_000;
    if decode_count <= LOW {
        0.99
    } else if decode_count >= HIGH {
        0.10
    } else {
        0.99 - 0.89 * ((decode_count - LOW) as f64 / (HIGH - LOW) as f64)
    }
}

fn is_merge(n: &YNode) -> bool {
    match n {
        YNode::Scalar { value, tag, plain } => {
            value == "<<" && ((tag.is_empty() && *plain) || tag == "!" || tag == MERGE_TAG)
        }
        _ => false,
    }
}

fn short_tag(tag: &str) -> String {
    match tag.strip_prefix(CORE) {
        Some(rest) => format!("!!{rest}"),
        None => tag.to_owned(),
    }
}

const WANT_MAP: &str = "map merge requires map or sequence of maps as the value";

impl Decoder {
    fn count(&mut self) -> Result<(), String> {
        self.decode_count += 1;
        if self.alias_depth > 0 {
            self.alias_count += 1;
        }
        if self.alias_count > 100
            && self.decode_count > 1000
            && self.alias_count as f64 / self.decode_count as f64
                > allowed_alias_ratio(self.decode_count)
        {
            return Err("document contains excessive aliasing".into());
        }
        Ok(())
    }

    fn enter_alias(&mut self, n: &YNode, name: &str) -> Result<(), String> {
        let p = n as *const YNode;
        if self.active.contains(&p) {
            return Err(format!("anchor '{name}' value contains itself"));
        }
        self.active.push(p);
        self.alias_depth += 1;
        Ok(())
    }

    fn leave_alias(&mut self) {
        self.active.pop();
        self.alias_depth -= 1;
    }

    fn unmarshal(&mut self, n: &YNode) -> Result<GoVal, String> {
        self.count()?;
        match n {
            YNode::Alias { name, target } => {
                let Some(t) = target else {
                    return Err(format!("anchor '{name}' value contains itself"));
                };
                self.enter_alias(n, name)?;
                let r = self.unmarshal(t);
                self.leave_alias();
                r
            }
            YNode::Scalar { value, tag, plain } => scalar(value, tag, *plain),
            YNode::Seq(items) => {
                let mut out = Vec::with_capacity(items.len());
                for it in items {
                    out.push(self.unmarshal(it)?);
                }
                Ok(GoVal::Seq(out))
            }
            YNode::Map(items) => {
                let mut out = Vec::new();
                self.mapping_into(items, &mut out)?;
                Ok(GoVal::Map(out))
            }
        }
    }

    fn mapping_into(
        &mut self,
        items: &[Rc<YNode>],
        out: &mut Vec<(GoVal, GoVal)>,
    ) -> Result<(), String> {
        for pair in items.chunks(2) {
            let [k, v] = pair else { break };
            if is_merge(k) {
                self.merge(v, out)?;
                continue;
            }
            let key = self.unmarshal(k)?;
            if matches!(key, GoVal::Seq(_) | GoVal::Map(_)) {
                return Err(format!("invalid map key: {}", key.go_repr()));
            }
            let val = self.unmarshal(v)?;
            set_key(out, key, val);
        }
        Ok(())
    }

    /// Decode a mapping (or an alias of one) into an existing map.
    fn decode_into_map(&mut self, n: &YNode, out: &mut Vec<(GoVal, GoVal)>) -> Result<(), String> {
        self.count()?;
        match n {
            YNode::Alias { name, target } => {
                let Some(t) = target else {
                    return Err(format!("anchor '{name}' value contains itself"));
                };
                self.enter_alias(n, name)?;
                let r = self.decode_into_map(t, out);
                self.leave_alias();
                r
            }
            YNode::Map(items) => self.mapping_into(items, out),
            _ => Err(WANT_MAP.into()),
        }
    }

    fn merge(&mut self, n: &YNode, out: &mut Vec<(GoVal, GoVal)>) -> Result<(), String> {
        let alias_of_map = |n: &YNode| match n {
            YNode::Alias {
                target: Some(t), ..
            } => matches!(**t, YNode::Map(_)),
            YNode::Alias { target: None, .. } => true,
            _ => false,
        };
        match n {
            YNode::Map(_) => self.decode_into_map(n, out),
            YNode::Alias { .. } if alias_of_map(n) => self.decode_into_map(n, out),
            YNode::Seq(items) => {
                for it in items.iter().rev() {
                    if !(matches!(**it, YNode::Map(_)) || alias_of_map(it)) {
                        return Err(WANT_MAP.into());
                    }
                    self.decode_into_map(it, out)?;
                }
                Ok(())
            }
            _ => Err(WANT_MAP.into()),
        }
    }
}

fn resolvable(tag: &str) -> bool {
    matches!(
        tag,
        "" | "tag:yaml.org,2002:str"
            | "tag:yaml.org,2002:bool"
            | "tag:yaml.org,2002:int"
            | "tag:yaml.org,2002:float"
            | "tag:yaml.org,2002:null"
            | "tag:yaml.org,2002:timestamp"
    )
}

fn scalar(value: &str, tag: &str, plain: bool) -> Result<GoVal, String> {
    if tag.is_empty() && !plain {
        return Ok(GoVal::Str(value.to_owned()));
    }
    if !resolvable(tag) {
        if tag == BINARY_TAG {
            let bytes = base64_decode(value)
                .ok_or_else(|| "!!binary value contains invalid base64 data".to_string())?;
            return Ok(GoVal::Str(String::from_utf8_lossy(&bytes).into_owned()));
        }
        return Ok(GoVal::Str(value.to_owned()));
    }
    let (rtag, val) = if tag == STR_TAG {
        ("str", GoVal::Str(value.to_owned()))
    } else {
        let ts_ok = tag.is_empty() || tag == "tag:yaml.org,2002:timestamp";
        match resolve_value(value, ts_ok) {
            Resolved::Null => ("null", GoVal::Nil),
            Resolved::Bool(b) => ("bool", GoVal::Bool(b)),
            Resolved::Int(i) => ("int", GoVal::Int(i)),
            Resolved::Uint(u) => ("int", GoVal::Uint(u)),
            Resolved::Float(f) => ("float", GoVal::Float(f)),
            Resolved::Str => ("str", GoVal::Str(value.to_owned())),
            Resolved::Timestamp => ("timestamp", GoVal::Str(value.to_owned())),
            Resolved::Merge => ("merge", GoVal::Str(value.to_owned())),
        }
    };
    let want = tag.strip_prefix(CORE).unwrap_or("");
    if tag.is_empty() || want == rtag || want == "str" {
        return Ok(val);
    }
    if want == "float" && rtag == "int" {
        return Ok(match val {
            GoVal::Int(i) => GoVal::Float(i as f64),
            GoVal::Uint(u) => GoVal::Float(u as f64),
            other => other,
        });
    }
    Err(format!(
        "cannot decode !!{rtag} `{value}` as a {}",
        short_tag(tag)
    ))
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let clean: Vec<u8> = s.bytes().filter(|&b| b != b'\n' && b != b'\r').collect();
    if !clean.len().is_multiple_of(4) {
        return None;
    }
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        })
    };
    let mut out = Vec::new();
    let n = clean.len() / 4;
    for (i, q) in clean.chunks(4).enumerate() {
        let pad = q.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && i + 1 != n) {
            return None;
        }
        let mut acc = 0u32;
        for &c in &q[..4 - pad] {
            acc = (acc << 6) | val(c)?;
        }
        acc <<= 6 * pad as u32;
        let bytes = [(acc >> 16) as u8, (acc >> 8) as u8, acc as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

fn key_string(k: &GoVal, v: &GoVal) -> Result<String, String> {
    Ok(match k {
        GoVal::Str(s) => s.clone(),
        GoVal::Int(i) => i.to_string(),
        GoVal::Bool(b) => b.to_string(),
        GoVal::Float(f) => match go_format_g(*f, true).as_str() {
            "+Inf" => ".inf".into(),
            "-Inf" => "-.inf".into(),
            "NaN" => ".nan".into(),
            s => s.to_owned(),
        },
        GoVal::Uint(_) => {
            return Err(format!(
                "unsupported map key of type: uint64, key: {}, value: {}",
                k.go_repr(),
                v.go_repr()
            ));
        }
        _ => {
            return Err(format!(
                "unsupported map key of type: %!s(<nil>), key: <nil>, value: {}",
                v.go_repr()
            ));
        }
    })
}

fn to_json(v: GoVal) -> Result<Value, String> {
    Ok(match v {
        GoVal::Nil => Value::Null,
        GoVal::Bool(b) => Value::Bool(b),
        GoVal::Int(i) => Value::from(i),
        GoVal::Uint(u) => Value::from(u),
        GoVal::Float(f) => {
            if !f.is_finite() {
                return Err(format!(
                    "json: unsupported value: {}",
                    go_format_g(f, false)
                ));
            }
            serde_json::from_str(&go_json_float(f)).map_err(|e| e.to_string())?
        }
        GoVal::Str(s) => Value::String(s),
        GoVal::Seq(items) => {
            Value::Array(items.into_iter().map(to_json).collect::<Result<_, _>>()?)
        }
        GoVal::Map(items) => {
            let mut pairs = Vec::with_capacity(items.len());
            for (k, v) in items {
                let ks = key_string(&k, &v)?;
                pairs.push((ks, to_json(v)?));
            }
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
            let mut m = serde_json::Map::new();
            for (k, v) in pairs {
                m.insert(k, v);
            }
            Value::Object(m)
        }
    })
}

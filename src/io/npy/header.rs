//! The `.npy` header: magic, version, and a Python dict literal such as
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`.
//!
//! Read as numpy reads it (`numpy.lib.format.read_array_header_*`, which calls
//! `ast.literal_eval`):
//! - a key given twice takes its **last** value, as a Python dict literal does, so vecprop
//!   and numpy always read the same shape from the same file;
//! - the dict must hold exactly `descr`, `fortran_order` and `shape`, as numpy requires;
//! - the header text is at most [`MAX_HEADER_LEN`] bytes, numpy's own default limit
//!   (`max_header_size`), checked before anything is allocated;
//! - literals nest at most [`MAX_NESTING`] deep, so no header can exhaust the stack.
//!
//! The header is read sequentially, without seeking, so pipes work.

use std::fmt;
use std::io::{ErrorKind, Read};
use std::path::Path;

use super::dtype::{ByteOrder, NpyDType};
use crate::error::{Error, Result};

pub(crate) const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// The longest header text accepted, in bytes: numpy's default `max_header_size`.
pub const MAX_HEADER_LEN: usize = 10_000;

/// The deepest nesting of dicts, tuples and lists accepted in a header.
pub const MAX_NESTING: usize = 32;

/// What a 2-D `.npy` header says about the array.
///
/// ```
/// use vecprop::io::npy::{NpyDType, NpyHeader};
///
/// let text = "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }\n";
/// let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
/// bytes.extend((text.len() as u16).to_le_bytes());
/// bytes.extend(text.as_bytes());
/// bytes.extend([0u8; 3 * 4 * 8]);
/// let mut stream = &bytes[..];
/// let (header, data_offset) = NpyHeader::read_from(std::path::Path::new("x.npy"), &mut stream)?;
/// assert_eq!((header.rows, header.cols, header.dtype), (3, 4, NpyDType::F8));
/// assert_eq!(data_offset, 10 + text.len() as u64);
/// assert_eq!(stream.len(), 3 * 4 * 8); // the stream stands at the data
/// # Ok::<(), vecprop::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// The element type.
    pub dtype: NpyDType,
    /// The byte order of multi-byte elements.
    pub byte_order: ByteOrder,
    /// Whether the data is column-major.
    pub fortran_order: bool,
    /// Rows (the first dimension).
    pub rows: usize,
    /// Columns (the second dimension).
    pub cols: usize,
}

impl Header {
    /// Reads the prelude and the header from the start of a `.npy` stream, without seeking,
    /// and returns the header and the byte offset of the data (where `reader` now stands).
    /// `path` names the source in errors.
    ///
    /// Errors: [`Error::InvalidNpy`] for a missing magic, an unknown version, a header longer
    /// than [`MAX_HEADER_LEN`], nested deeper than [`MAX_NESTING`], malformed, or without
    /// exactly the keys numpy requires; [`Error::UnsupportedDType`] for anything but
    /// `<f4`/`<f8`; [`Error::InputRank`] unless 2-D; [`Error::Io`] if reading fails.
    pub fn read_from(path: &Path, reader: &mut impl Read) -> Result<(Header, u64)> {
        let mut prelude = [0u8; 12];
        let got = read_up_to(reader, &mut prelude[..10]).map_err(|e| Error::io(path, e))?;
        let needs_more = got == 10 && matches!(prelude[6], 2 | 3) && prelude[..6] == MAGIC[..];
        let got = if needs_more {
            10 + read_up_to(reader, &mut prelude[10..]).map_err(|e| Error::io(path, e))?
        } else {
            got
        };
        let (major, len) = parse_prelude(path, &prelude[..got])?;
        if len > MAX_HEADER_LEN {
            return Err(Error::InvalidNpy {
                path: path.to_path_buf(),
                reason: format!(
                    "its header is {len} bytes long, more than the {MAX_HEADER_LEN} that numpy and vecprop accept"
                ),
            });
        }
        let mut text = vec![0u8; len];
        reader.read_exact(&mut text).map_err(|e| {
            if e.kind() == ErrorKind::UnexpectedEof {
                Error::InvalidNpy {
                    path: path.to_path_buf(),
                    reason: "truncated: the file ends inside the header".into(),
                }
            } else {
                Error::io(path, e)
            }
        })?;
        let text = String::from_utf8(text).map_err(|_| Error::InvalidNpy {
            path: path.to_path_buf(),
            reason: "the header is not text".into(),
        })?;
        let header = parse_header(path, &text)?;
        Ok((header, (prelude_len(major) + len) as u64))
    }
}

/// Reads as many bytes as there are, up to `buf.len()`.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The length of the fixed prelude (magic, version, header length) for a format version.
pub(crate) fn prelude_len(major: u8) -> usize {
    if major == 1 {
        10
    } else {
        12
    }
}

/// Reads the version and the header length from the first bytes of the file.
pub(crate) fn parse_prelude(path: &Path, bytes: &[u8]) -> Result<(u8, usize)> {
    let invalid = |reason: String| Error::InvalidNpy {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(invalid(
            "it does not start with the .npy magic string \\x93NUMPY".into(),
        ));
    }
    let major = bytes[6];
    let len = match major {
        1 => u16::from_le_bytes([bytes[8], bytes[9]]) as usize,
        2 | 3 if bytes.len() >= 12 => {
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize
        }
        2 | 3 => return Err(invalid("truncated header".into())),
        _ => {
            return Err(invalid(format!(
                "unsupported format version {major}.{} (expected 1.0, 2.0 or 3.0)",
                bytes[7]
            )))
        }
    };
    Ok((major, len))
}

/// The keys numpy requires, no more and no fewer.
const EXPECTED_KEYS: [&str; 3] = ["descr", "fortran_order", "shape"];

/// Parses the dict literal and checks it describes a 2-D `<f4`/`<f8` array.
pub(crate) fn parse_header(path: &Path, text: &str) -> Result<Header> {
    let invalid = |reason: String| Error::InvalidNpy {
        path: path.to_path_buf(),
        reason,
    };
    let value = Parser::new(text)
        .parse_document()
        .map_err(|e| invalid(format!("malformed header `{}`: {e}", excerpt(text))))?;
    let Value::Dict(entries) = value else {
        return Err(invalid(format!("header `{}` is not a dict", excerpt(text))));
    };
    // A Python dict literal keeps the last value of a repeated key; so does numpy.
    let get = |key: &str| {
        entries
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
            .ok_or_else(|| invalid(format!("header has no `{key}` entry")))
    };
    if let Some((extra, _)) = entries
        .iter()
        .find(|(k, _)| !EXPECTED_KEYS.contains(&k.as_str()))
    {
        return Err(invalid(format!(
            "header has a key `{extra}`; numpy accepts exactly `descr`, `fortran_order` and `shape`"
        )));
    }
    let descr = get("descr")?;
    let known = match descr {
        Value::Str(s) => NpyDType::from_descr(s),
        _ => None,
    };
    let Some((dtype, byte_order)) = known else {
        return Err(Error::UnsupportedDType {
            dtype: excerpt(&descr.to_string()),
            context: format!("{}", path.display()),
            supported: "float16, float32 and float64: <f2, <f4, <f8, or big-endian >f2, >f4, >f8",
        });
    };
    let fortran_order = match get("fortran_order")? {
        Value::Bool(b) => *b,
        other => return Err(invalid(format!("fortran_order is `{other}`, not a bool"))),
    };
    let shape: Vec<usize> = match get("shape")? {
        Value::Tuple(items) => items
            .iter()
            .map(|v| match v {
                Value::Int(n) => Ok(*n),
                other => Err(invalid(format!("shape entry `{other}` is not an integer"))),
            })
            .collect::<Result<_>>()?,
        other => return Err(invalid(format!("shape is `{other}`, not a tuple"))),
    };
    match shape[..] {
        [rows, cols] => Ok(Header {
            dtype,
            byte_order,
            fortran_order,
            rows,
            cols,
        }),
        _ => Err(Error::InputRank {
            ndim: shape.len(),
            shape,
        }),
    }
}

/// At most the first 200 characters of `text`, trimmed, for an error message.
fn excerpt(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_string(),
    }
}

/// Formats a version 1.0 header of exactly `total_len` bytes (prelude included), padded with
/// spaces and ending in a newline.
pub(crate) fn format_header(rows: usize, cols: usize, total_len: usize) -> Vec<u8> {
    format_header_of("<f4", &format!("({rows}, {cols})"), total_len)
}

/// A version-1 header for a C-order array of element type `descr` and `shape` (a Python
/// tuple, e.g. `(5,)`), padded with spaces to `total_len` bytes.
pub(crate) fn format_header_of(descr: &str, shape: &str, total_len: usize) -> Vec<u8> {
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    let text_len = total_len - prelude_len(1);
    let mut out = Vec::with_capacity(total_len);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(text_len as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.resize(total_len - 1, b' ');
    out.push(b'\n');
    out
}

/// A Python literal, as far as .npy headers use them.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Str(String),
    Bool(bool),
    Int(usize),
    None,
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(String, Value)>),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |items: &[Value]| {
            items
                .iter()
                .map(Value::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Value::Str(s) => write!(f, "{s}"),
            Value::Bool(b) => write!(f, "{}", if *b { "True" } else { "False" }),
            Value::Int(n) => write!(f, "{n}"),
            Value::None => write!(f, "None"),
            Value::Tuple(items) => write!(f, "({})", join(items)),
            Value::List(items) => write!(f, "[{}]", join(items)),
            Value::Dict(entries) => {
                let body: Vec<String> =
                    entries.iter().map(|(k, v)| format!("'{k}': {v}")).collect();
                write!(f, "{{{}}}", body.join(", "))
            }
        }
    }
}

/// A recursive-descent parser for the literal.
struct Parser<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    /// How many dicts, tuples and lists enclose the current position.
    depth: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        Parser {
            chars: text.chars().peekable(),
            depth: 0,
        }
    }

    /// Parses a container one level deeper, refusing to go past [`MAX_NESTING`].
    fn nested<T>(
        &mut self,
        parse: impl FnOnce(&mut Self) -> std::result::Result<T, String>,
    ) -> std::result::Result<T, String> {
        if self.depth >= MAX_NESTING {
            return Err(format!("nested more than {MAX_NESTING} levels deep"));
        }
        self.depth += 1;
        let parsed = parse(self);
        self.depth -= 1;
        parsed
    }

    fn parse_document(mut self) -> std::result::Result<Value, String> {
        let value = self.value()?;
        self.skip_space();
        match self.chars.next() {
            None => Ok(value),
            Some(c) => Err(format!("unexpected `{c}` after the dict")),
        }
    }

    fn skip_space(&mut self) {
        while self.chars.next_if(|c| c.is_whitespace()).is_some() {}
    }

    fn expect(&mut self, want: char) -> std::result::Result<(), String> {
        self.skip_space();
        match self.chars.next() {
            Some(c) if c == want => Ok(()),
            Some(c) => Err(format!("expected `{want}`, found `{c}`")),
            None => Err(format!("expected `{want}`, found the end")),
        }
    }

    fn value(&mut self) -> std::result::Result<Value, String> {
        self.skip_space();
        match self.chars.peek().copied() {
            Some('{') => self.nested(Self::dict),
            Some('(') => self.nested(|p| p.sequence('(', ')')).map(Value::Tuple),
            Some('[') => self.nested(|p| p.sequence('[', ']')).map(Value::List),
            Some(q @ ('\'' | '"')) => self.string(q).map(Value::Str),
            Some(c) if c.is_ascii_digit() => self.int(),
            Some(c) if c.is_alphabetic() => self.word(),
            Some(c) => Err(format!("unexpected `{c}`")),
            None => Err("unexpected end".into()),
        }
    }

    fn dict(&mut self) -> std::result::Result<Value, String> {
        self.expect('{')?;
        let mut entries = Vec::new();
        loop {
            self.skip_space();
            if self.chars.next_if_eq(&'}').is_some() {
                return Ok(Value::Dict(entries));
            }
            let key = match self.value()? {
                Value::Str(key) => key,
                other => return Err(format!("dict key `{other}` is not a string")),
            };
            self.expect(':')?;
            entries.push((key, self.value()?));
            self.skip_space();
            if self.chars.next_if_eq(&',').is_none() {
                self.expect('}')?;
                return Ok(Value::Dict(entries));
            }
        }
    }

    fn sequence(&mut self, open: char, close: char) -> std::result::Result<Vec<Value>, String> {
        self.expect(open)?;
        let mut items = Vec::new();
        loop {
            self.skip_space();
            if self.chars.next_if_eq(&close).is_some() {
                return Ok(items);
            }
            items.push(self.value()?);
            self.skip_space();
            if self.chars.next_if_eq(&',').is_none() {
                self.expect(close)?;
                return Ok(items);
            }
        }
    }

    fn string(&mut self, quote: char) -> std::result::Result<String, String> {
        self.chars.next();
        let mut out = String::new();
        loop {
            match self.chars.next() {
                Some(c) if c == quote => return Ok(out),
                Some('\\') => match self.chars.next() {
                    Some(c) => out.push(c),
                    None => return Err("unterminated string".into()),
                },
                Some(c) => out.push(c),
                None => return Err("unterminated string".into()),
            }
        }
    }

    fn int(&mut self) -> std::result::Result<Value, String> {
        let mut digits = String::new();
        while let Some(c) = self.chars.next_if(char::is_ascii_digit) {
            digits.push(c);
        }
        // Python 2 wrote long integers with an `L` suffix.
        self.chars.next_if(|c| *c == 'L' || *c == 'l');
        digits
            .parse()
            .map(Value::Int)
            .map_err(|_| format!("integer `{digits}` is out of range"))
    }

    fn word(&mut self) -> std::result::Result<Value, String> {
        let mut word = String::new();
        while let Some(c) = self.chars.next_if(|c| c.is_alphanumeric() || *c == '_') {
            word.push(c);
        }
        match word.as_str() {
            "True" => Ok(Value::Bool(true)),
            "False" => Ok(Value::Bool(false)),
            "None" => Ok(Value::None),
            _ => Err(format!("unknown name `{word}`")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Header> {
        parse_header(Path::new("x.npy"), text)
    }

    #[test]
    fn parses_what_numpy_writes() {
        let h = parse("{'descr': '<f8', 'fortran_order': True, 'shape': (3, 4), }   \n").unwrap();
        assert_eq!(
            h,
            Header {
                dtype: NpyDType::F8,
                byte_order: ByteOrder::Little,
                fortran_order: true,
                rows: 3,
                cols: 4
            }
        );
    }

    #[test]
    fn rank_dtype_and_syntax_errors_are_distinct() {
        let rank = parse("{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }").unwrap_err();
        assert!(matches!(rank, Error::InputRank { ndim: 1, .. }), "{rank}");
        let dtype =
            parse("{'descr': '<i4', 'fortran_order': False, 'shape': (5, 2), }").unwrap_err();
        assert!(matches!(dtype, Error::UnsupportedDType { .. }), "{dtype}");
        let structured =
            parse("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (5, 2), }")
                .unwrap_err();
        assert!(
            structured.to_string().contains("[(a, <f4)]"),
            "{structured}"
        );
        let syntax = parse("{'descr': '<f4', 'fortran_order': False, 'shape': (5, 2").unwrap_err();
        assert!(matches!(syntax, Error::InvalidNpy { .. }), "{syntax}");
        let missing = parse("{'descr': '<f4', 'shape': (5, 2)}").unwrap_err();
        assert!(missing.to_string().contains("fortran_order"), "{missing}");
    }

    #[test]
    fn duplicate_keys_take_the_last_value_as_in_python() {
        let h = parse("{'shape': (9, 9), 'descr': '<f8', 'fortran_order': False, 'shape': (3, 4)}")
            .unwrap();
        assert_eq!((h.rows, h.cols), (3, 4));
        let h = parse(
            "{'descr': '<f8', 'fortran_order': True, 'shape': (3, 4), 'fortran_order': False}",
        )
        .unwrap();
        assert!(!h.fortran_order);
        let extra =
            parse("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), 'x': 1}").unwrap_err();
        assert!(extra.to_string().contains("key `x`"), "{extra}");
    }

    #[test]
    fn nesting_is_bounded_without_exhausting_the_stack() {
        assert!(parse("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), }").is_ok());
        let inner = format!(
            "{}{}",
            "(".repeat(MAX_NESTING - 1),
            ")".repeat(MAX_NESTING - 1)
        );
        let at_limit = format!("{{'descr': {inner}, 'fortran_order': False, 'shape': (1, 2)}}");
        assert!(matches!(
            parse(&at_limit),
            Err(Error::UnsupportedDType { .. })
        ));
        for open in ["{'a': ", "(", "["] {
            let deep = open.repeat(1_000_000);
            let err = parse(&deep).unwrap_err();
            assert!(err.to_string().contains("nested more than 32"), "{err}");
            assert!(
                err.to_string().len() < 600,
                "the message quotes a bounded excerpt"
            );
        }
    }

    #[test]
    fn headers_are_read_from_a_stream_and_their_length_is_bounded() {
        let bytes = format_header(5, 2, 128);
        let mut stream = &bytes[..];
        let (h, offset) = Header::read_from(Path::new("x"), &mut stream).unwrap();
        assert_eq!((h.rows, h.cols, offset), (5, 2, 128));
        assert!(stream.is_empty());

        let mut long = b"\x93NUMPY\x02\x00".to_vec();
        long.extend(u32::MAX.to_le_bytes());
        let err = Header::read_from(Path::new("x"), &mut &long[..]).unwrap_err();
        assert!(err.to_string().contains("more than the 10000"), "{err}");

        let err = Header::read_from(Path::new("x"), &mut &bytes[..60]).unwrap_err();
        assert!(err.to_string().contains("ends inside the header"), "{err}");
        let err = Header::read_from(Path::new("x"), &mut &b"\x93NUMPY\x02"[..]).unwrap_err();
        assert!(err.to_string().contains("magic"), "{err}");
    }

    #[test]
    fn formatted_headers_are_aligned_and_parse_back() {
        let bytes = format_header(7, 3, 128);
        assert_eq!(bytes.len(), 128);
        let (major, len) = parse_prelude(Path::new("x"), &bytes).unwrap();
        assert_eq!((major, len), (1, 118));
        let h = parse(std::str::from_utf8(&bytes[10..]).unwrap()).unwrap();
        assert_eq!((h.rows, h.cols, h.dtype), (7, 3, NpyDType::F4));
    }
}

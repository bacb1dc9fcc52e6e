//! A strict JSON object parser (RFC 8259) that refuses duplicate members at
//! every depth.
//!
//! `serde_json::Value` (and serde's derived structs for members they ignore) keep
//! the last of two members with the same name, silently. A proof whose header says
//! `"alg":"none"` to one parser and `"alg":"ES256"` to another is the classic
//! confusion attack between a verifier and whatever logs or forwards the proof, so
//! the proof's header, key and claims are read through this parser: a second member
//! of the same name (after unescaping: `"a"` and `"\u0061"` are the same name) fails
//! the parse.
//!
//! It accepts what `serde_json::from_str` accepts, no more (a differential test and
//! the `dpop_json` fuzz target hold it to that): UTF-8 checked once for the whole
//! text; no control characters in strings and no lone surrogates in `\u` escapes;
//! no leading zeros; the four JSON whitespace characters only; nothing after the
//! object; at most [`MAX_DEPTH`]` - 1` nested arrays and objects (serde_json's
//! limit). It is a loop over an explicit stack, not a recursion the input drives.
//!
//! The values borrow from the decoded segment: a string without escapes is a slice
//! of it. Members are kept in two small arrays on the stack (the top-level object's,
//! and those of the objects it holds, such as a proof header's `jwk`), spilling to
//! the heap only for an object of unusual size: a proof's header, key and claims are
//! read without allocating. Arrays are checked (for duplicates in the objects they
//! hold) and then dropped: no member a proof is read for is an array.

/// A JSON value as a parsed [`Object`] hands it out.
#[derive(Debug, Clone, Copy)]
pub(super) enum Json<'d> {
    Null,
    /// (Read by the differential test only: no proof member is a boolean.)
    #[allow(dead_code)]
    Bool(bool),
    Number(Number),
    String(&'d str),
    /// An array: checked, its items not kept.
    Array,
    Object(Object<'d>),
}

/// A JSON number, as serde_json would hand it over: a non-negative integer that
/// fits is `Unsigned`, a negative one that fits `Negative`, anything else (a
/// fraction, an exponent, `-0`, an integer out of range) `Float`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Number {
    Unsigned(u64),
    Negative(i64),
    Float(f64),
}

/// Why a segment is not a JSON object we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum JsonError {
    /// Not JSON, not one object, or text after it.
    Malformed,
    /// A name appears twice in one object.
    DuplicateMember,
}

/// One more level of nesting than accepted: serde_json's recursion limit (it
/// refuses the 128th nested array or object).
pub(super) const MAX_DEPTH: usize = 128;

/// Up to this many members, an object's names are compared pairwise; beyond, they
/// are sorted first, so that an 8 KiB object of one-letter names costs
/// `n log n` comparisons, not `n²`.
const PAIRWISE_MAX: usize = 16;

/// How many members (of the top-level object, and of the objects being read) are
/// kept without allocating: a proof's header with its `jwk` open has seven, its
/// claims at most six.
const TOP_INLINE: usize = 8;

/// How many members of nested objects are kept without allocating: a `jwk` has
/// four or five.
const NESTED_INLINE: usize = 6;

/// How many open arrays and objects are tracked without allocating.
const FRAMES_INLINE: usize = 8;

/// A parsed JSON object: its members, and those of the objects nested in it.
#[derive(Debug)]
pub(super) struct Document<'a> {
    /// The top-level object's members, in the order written.
    top: Inline<Member<'a>, TOP_INLINE>,
    /// The members of every object kept below it, each object's contiguous.
    nested: Inline<Member<'a>, NESTED_INLINE>,
    /// The strings that had escapes, unescaped, one after the other.
    unescaped: String,
}

/// A JSON object of a [`Document`]: its members in the order written, each name
/// once.
#[derive(Debug, Clone, Copy)]
pub(super) struct Object<'d> {
    members: &'d [Member<'d>],
    /// Where the members of the objects it holds are.
    nested: &'d [Member<'d>],
    /// Where its strings with escapes are, unescaped.
    unescaped: &'d str,
}

/// A member as stored: a nested object is a range of [`Document::nested`]. No
/// drop glue: the members are copied, overwritten and dropped in bulk.
#[derive(Debug, Clone, Copy)]
struct Member<'a> {
    name: Str<'a>,
    value: Value<'a>,
}

/// What a slot holds before a member is written to it.
const BLANK: Member<'static> = Member {
    name: Str::Borrowed(""),
    value: Value::Null,
};

/// A string as stored: a slice of the text, or (if it had escapes) a range of
/// [`Document::unescaped`].
#[derive(Debug, Clone, Copy)]
enum Str<'a> {
    Borrowed(&'a str),
    Unescaped { start: u32, len: u32 },
}

impl<'a> Str<'a> {
    #[inline(always)]
    fn resolve(self, unescaped: &'a str) -> &'a str {
        match self {
            Str::Borrowed(text) => text,
            Str::Unescaped { start, len } => {
                let start = start as usize;
                unescaped
                    .get(start..start + len as usize)
                    .unwrap_or_default()
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Value<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Str<'a>),
    Array,
    Object { start: u32, len: u32 },
}

impl<'a> Document<'a> {
    /// An empty document, to [`parse`](Self::parse) into: on the caller's stack,
    /// so that its members are not moved once parsed.
    pub(super) fn new() -> Self {
        Document {
            top: Inline::new(BLANK),
            nested: Inline::new(BLANK),
            unescaped: String::new(),
        }
    }

    /// Parses `bytes` as exactly one JSON object, into this document (what it
    /// held before is dropped).
    pub(super) fn parse(&mut self, bytes: &'a [u8]) -> Result<Object<'_>, JsonError> {
        self.top.truncate(0);
        self.nested.truncate(0);
        self.unescaped.clear();
        // UTF-8 checked once for the whole text (JSON is UTF-8, RFC 8259 §8.1).
        let text = std::str::from_utf8(bytes).map_err(|_| JsonError::Malformed)?;
        Parser {
            text,
            bytes,
            at: 0,
            unescaped: &mut self.unescaped,
        }
        .document(&mut self.top, &mut self.nested)?;
        Ok(self.object())
    }

    /// A new document holding `bytes`, parsed (for tests).
    #[allow(dead_code)]
    pub(super) fn from_bytes(bytes: &'a [u8]) -> Result<Self, JsonError> {
        let mut document = Document::new();
        document.parse(bytes)?;
        Ok(document)
    }

    /// The top-level object.
    pub(super) fn object(&self) -> Object<'_> {
        Object {
            members: self.top.as_slice(),
            nested: self.nested.as_slice(),
            unescaped: &self.unescaped,
        }
    }
}

impl<'d> Object<'d> {
    /// The member named `name`.
    pub(super) fn get(&self, name: &str) -> Option<Json<'d>> {
        self.members
            .iter()
            .find(|member| member.name.resolve(self.unescaped) == name)
            .map(|member| self.view(member.value))
    }

    /// Whether a member named `name` is present (whatever its value).
    pub(super) fn contains(&self, name: &str) -> bool {
        self.members
            .iter()
            .any(|member| member.name.resolve(self.unescaped) == name)
    }

    /// The members' names, in the order written.
    pub(super) fn names(&self) -> impl Iterator<Item = &'d str> + '_ {
        self.members
            .iter()
            .map(|member| member.name.resolve(self.unescaped))
    }

    /// The members, in the order written.
    pub(super) fn members(&self) -> impl Iterator<Item = (&'d str, Json<'d>)> + '_ {
        self.members
            .iter()
            .map(|member| (member.name.resolve(self.unescaped), self.view(member.value)))
    }

    #[inline(always)]
    fn view(&self, value: Value<'d>) -> Json<'d> {
        match value {
            Value::Null => Json::Null,
            Value::Bool(value) => Json::Bool(value),
            Value::Number(number) => Json::Number(number),
            Value::String(value) => Json::String(value.resolve(self.unescaped)),
            Value::Array => Json::Array,
            Value::Object { start, len } => {
                let start = start as usize;
                let members = self
                    .nested
                    .get(start..start + len as usize)
                    .unwrap_or_default();
                Json::Object(Object {
                    members,
                    nested: self.nested,
                    unescaped: self.unescaped,
                })
            }
        }
    }
}

/// Whether two members have the same name (after unescaping: names are compared
/// as the strings they denote).
fn has_duplicates(members: &[Member<'_>], unescaped: &str) -> bool {
    if members.len() <= PAIRWISE_MAX {
        // A name is compared with the earlier ones only if one of them has its
        // fingerprint: distinct names (the usual case) cost one pass.
        let mut seen = 0u64;
        members.iter().enumerate().any(|(i, member)| {
            let name = member.name.resolve(unescaped);
            let bit = 1u64 << fingerprint(name);
            let suspect = seen & bit != 0;
            seen |= bit;
            suspect
                && members[..i]
                    .iter()
                    .any(|other| other.name.resolve(unescaped) == name)
        })
    } else {
        let mut names: Vec<&str> = members
            .iter()
            .map(|member| member.name.resolve(unescaped))
            .collect();
        names.sort_unstable();
        names.windows(2).any(|pair| pair[0] == pair[1])
    }
}

/// Six bits of a name (equal names, equal bits): its length, first and last byte.
fn fingerprint(name: &str) -> u32 {
    let bytes = name.as_bytes();
    let first = bytes.first().copied().unwrap_or(0);
    let last = bytes.last().copied().unwrap_or(0);
    // Truncation is the hash.
    #[allow(clippy::cast_possible_truncation)]
    let len = bytes.len() as u32;
    (len + 7 * u32::from(first) + 13 * u32::from(last)) & 63
}

/// An open array or object.
#[derive(Debug, Clone, Copy)]
enum Frame {
    Array,
    /// An object whose members start at `start` in the parser's member stack;
    /// `kept` unless it is inside an array.
    Object {
        start: usize,
        kept: bool,
    },
}

struct Parser<'a, 'u> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
    /// Where the strings with escapes go, unescaped.
    unescaped: &'u mut String,
}

impl<'a> Parser<'a, '_> {
    /// The whole text: one object, with whitespace around it only.
    ///
    /// `top` (empty) gets the members of the open objects, innermost last; when
    /// the top-level object closes, only its own are left. `nested` (empty) gets
    /// those of the objects it holds.
    fn document(
        mut self,
        top: &mut Inline<Member<'a>, TOP_INLINE>,
        nested: &mut Inline<Member<'a>, NESTED_INLINE>,
    ) -> Result<(), JsonError> {
        use JsonError::Malformed;
        let mut frames: Inline<Frame, FRAMES_INLINE> = Inline::new(Frame::Array);
        let mut is_object = false;
        'value: loop {
            // A value is expected.
            self.skip_whitespace();
            let mut value = match self.next().ok_or(Malformed)? {
                b'{' => {
                    if frames.len() + 1 >= MAX_DEPTH {
                        return Err(Malformed);
                    }
                    let kept = match frames.as_slice().last() {
                        None => true,
                        Some(Frame::Object { kept, .. }) => *kept,
                        Some(Frame::Array) => false,
                    };
                    frames.push(Frame::Object {
                        start: top.len(),
                        kept,
                    });
                    self.skip_whitespace();
                    if self.peek() == Some(b'}') {
                        self.at += 1;
                        self.close_object(top, nested, &mut frames)?
                    } else {
                        self.member_name(top)?;
                        continue 'value;
                    }
                }
                b'[' => {
                    if frames.len() + 1 >= MAX_DEPTH {
                        return Err(Malformed);
                    }
                    frames.push(Frame::Array);
                    self.skip_whitespace();
                    if self.peek() == Some(b']') {
                        self.at += 1;
                        frames.pop();
                        Value::Array
                    } else {
                        continue 'value;
                    }
                }
                b'"' => Value::String(self.string()?),
                b't' => self.literal(b"rue", Value::Bool(true))?,
                b'f' => self.literal(b"alse", Value::Bool(false))?,
                b'n' => self.literal(b"ull", Value::Null)?,
                b'-' | b'0'..=b'9' => Value::Number(self.number()?),
                _ => return Err(Malformed),
            };
            // A value is complete: it goes to the container it is in, and the
            // container goes on or closes (and is then a complete value).
            loop {
                match frames.as_slice().last() {
                    None => {
                        self.skip_whitespace();
                        if self.at != self.bytes.len() {
                            return Err(Malformed);
                        }
                        is_object |= matches!(value, Value::Object { .. });
                        break 'value;
                    }
                    Some(Frame::Object { .. }) => {
                        if let Some(member) = top.last_mut() {
                            member.value = value;
                        }
                        self.skip_whitespace();
                        match self.next() {
                            Some(b',') => {
                                self.skip_whitespace();
                                self.member_name(top)?;
                                continue 'value;
                            }
                            Some(b'}') => {
                                value = self.close_object(top, nested, &mut frames)?;
                            }
                            _ => return Err(Malformed),
                        }
                    }
                    Some(Frame::Array) => {
                        self.skip_whitespace();
                        match self.next() {
                            Some(b',') => continue 'value,
                            Some(b']') => {
                                frames.pop();
                                value = Value::Array;
                            }
                            _ => return Err(Malformed),
                        }
                    }
                }
            }
        }
        if is_object {
            Ok(())
        } else {
            Err(Malformed)
        }
    }

    /// Closes the innermost frame, an object whose `}` was just read: refuses
    /// duplicate names, and moves its members where its parent will find them
    /// (a top-level object's stay where they are).
    fn close_object(
        &self,
        top: &mut Inline<Member<'a>, TOP_INLINE>,
        nested: &mut Inline<Member<'a>, NESTED_INLINE>,
        frames: &mut Inline<Frame, FRAMES_INLINE>,
    ) -> Result<Value<'a>, JsonError> {
        let Some(Frame::Object { start, kept }) = frames.pop() else {
            return Err(JsonError::Malformed);
        };
        let members = top.as_slice().get(start..).unwrap_or_default();
        if has_duplicates(members, self.unescaped) {
            return Err(JsonError::DuplicateMember);
        }
        if frames.as_slice().is_empty() {
            return Ok(Value::Object { start: 0, len: 0 });
        }
        if !kept {
            top.truncate(start);
            return Ok(Value::Null);
        }
        let (Ok(nested_start), Ok(len)) = (
            u32::try_from(nested.len()),
            u32::try_from(top.len() - start),
        ) else {
            return Err(JsonError::Malformed);
        };
        top.move_tail(start, nested);
        Ok(Value::Object {
            start: nested_start,
            len,
        })
    }

    /// A member's name (the `"` is next), and its `:`: pushes the member, its
    /// value to come.
    #[inline(always)]
    fn member_name(&mut self, top: &mut Inline<Member<'a>, TOP_INLINE>) -> Result<(), JsonError> {
        if self.next() != Some(b'"') {
            return Err(JsonError::Malformed);
        }
        let name = self.string()?;
        self.skip_whitespace();
        if self.next() != Some(b':') {
            return Err(JsonError::Malformed);
        }
        top.push(Member {
            name,
            value: Value::Null,
        });
        Ok(())
    }

    #[inline(always)]
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    #[inline(always)]
    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        Some(byte)
    }

    /// Space, tab, line feed and carriage return (RFC 8259 §2), nothing else.
    #[inline(always)]
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    /// The rest of `true`, `false` or `null`.
    fn literal(&mut self, rest: &[u8], value: Value<'a>) -> Result<Value<'a>, JsonError> {
        if self.bytes.get(self.at..self.at + rest.len()) == Some(rest) {
            self.at += rest.len();
            Ok(value)
        } else {
            Err(JsonError::Malformed)
        }
    }

    /// A string's contents and closing quote (the opening one was read):
    /// borrowed unless it has escapes.
    #[inline(always)]
    fn string(&mut self) -> Result<Str<'a>, JsonError> {
        let start = self.at;
        let (end, byte) = self.run()?;
        let text = self.text.get(start..end).ok_or(JsonError::Malformed)?;
        match byte {
            b'"' => Ok(Str::Borrowed(text)),
            b'\\' => self.escaped(text),
            _ => Err(JsonError::Malformed),
        }
    }

    /// The rest of a string after its first escape (`text` before it, the `\\`
    /// read): unescaped into [`Document::unescaped`].
    #[cold]
    #[inline(never)]
    fn escaped(&mut self, text: &str) -> Result<Str<'a>, JsonError> {
        let unescaped_start = self.unescaped.len();
        self.unescaped.push_str(text);
        loop {
            // A `\` was just read.
            let unescaped = match self.next().ok_or(JsonError::Malformed)? {
                b'"' => '"',
                b'\\' => '\\',
                b'/' => '/',
                b'b' => '\u{8}',
                b'f' => '\u{c}',
                b'n' => '\n',
                b'r' => '\r',
                b't' => '\t',
                b'u' => self.unicode_escape()?,
                _ => return Err(JsonError::Malformed),
            };
            self.unescaped.push(unescaped);
            let start = self.at;
            let (end, byte) = self.run()?;
            let run = self.text.get(start..end).ok_or(JsonError::Malformed)?;
            self.unescaped.push_str(run);
            match byte {
                b'"' => break,
                b'\\' => {}
                _ => return Err(JsonError::Malformed),
            }
        }
        let (Ok(start), Ok(len)) = (
            u32::try_from(unescaped_start),
            u32::try_from(self.unescaped.len() - unescaped_start),
        ) else {
            return Err(JsonError::Malformed);
        };
        Ok(Str::Unescaped { start, len })
    }

    /// Skips a run of string characters: where it ends and the byte that ends
    /// it (a quote, a backslash or a control character), which is read.
    #[inline(always)]
    fn run(&mut self) -> Result<(usize, u8), JsonError> {
        let rest = self.bytes.get(self.at..).unwrap_or_default();
        let end = self.at + string_special(rest).ok_or(JsonError::Malformed)?;
        let byte = self.bytes.get(end).copied().ok_or(JsonError::Malformed)?;
        self.at = end + 1;
        Ok((end, byte))
    }

    /// The character of a `\u` escape (the `\u` was read): a surrogate pair in
    /// two escapes, never a lone surrogate.
    fn unicode_escape(&mut self) -> Result<char, JsonError> {
        let first = self.hex4()?;
        let code = match first {
            0xd800..=0xdbff => {
                if self.next() != Some(b'\\') || self.next() != Some(b'u') {
                    return Err(JsonError::Malformed);
                }
                let second = self.hex4()?;
                if !(0xdc00..=0xdfff).contains(&second) {
                    return Err(JsonError::Malformed);
                }
                0x10000 + ((first - 0xd800) << 10) + (second - 0xdc00)
            }
            0xdc00..=0xdfff => return Err(JsonError::Malformed),
            _ => first,
        };
        char::from_u32(code).ok_or(JsonError::Malformed)
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let mut code = 0;
        for _ in 0..4 {
            let digit = match self.next().ok_or(JsonError::Malformed)? {
                byte @ b'0'..=b'9' => byte - b'0',
                byte @ b'a'..=b'f' => byte - b'a' + 10,
                byte @ b'A'..=b'F' => byte - b'A' + 10,
                _ => return Err(JsonError::Malformed),
            };
            code = code * 16 + u32::from(digit);
        }
        Ok(code)
    }

    /// A number (its first character was read): integers exactly when they fit,
    /// as serde_json reads them; anything else as the nearest `f64`, refused if
    /// infinite (serde_json refuses those as out of range).
    fn number(&mut self) -> Result<Number, JsonError> {
        let start = self.at - 1;
        let negative = self.bytes[start] == b'-';
        let first = if negative {
            self.next().ok_or(JsonError::Malformed)?
        } else {
            self.bytes[start]
        };
        let mut significand = u64::from(first.wrapping_sub(b'0'));
        let mut overflow = false;
        match first {
            b'0' => {
                if let Some(b'0'..=b'9') = self.peek() {
                    return Err(JsonError::Malformed);
                }
            }
            b'1'..=b'9' => {
                while let Some(byte @ b'0'..=b'9') = self.peek() {
                    self.at += 1;
                    match significand
                        .checked_mul(10)
                        .and_then(|n| n.checked_add(u64::from(byte - b'0')))
                    {
                        Some(n) => significand = n,
                        None => overflow = true,
                    }
                }
            }
            _ => return Err(JsonError::Malformed),
        }
        let mut integer = !overflow;
        if self.peek() == Some(b'.') {
            self.at += 1;
            self.digits()?;
            integer = false;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            self.digits()?;
            integer = false;
        }
        if integer {
            if !negative {
                return Ok(Number::Unsigned(significand));
            }
            // As serde_json: `-0` and what is below `i64::MIN` are floats.
            #[allow(clippy::cast_possible_wrap)]
            let negated = (significand as i64).wrapping_neg();
            if negated < 0 {
                return Ok(Number::Negative(negated));
            }
        }
        let float: f64 = self
            .text
            .get(start..self.at)
            .and_then(|text| text.parse().ok())
            .ok_or(JsonError::Malformed)?;
        if float.is_finite() {
            Ok(Number::Float(float))
        } else {
            Err(JsonError::Malformed)
        }
    }

    /// One or more decimal digits.
    fn digits(&mut self) -> Result<(), JsonError> {
        let start = self.at;
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
        if self.at == start {
            Err(JsonError::Malformed)
        } else {
            Ok(())
        }
    }
}

/// Where the first `"`, `\` or control character (below U+0020) in `bytes` is:
/// eight bytes at a time (the strings are most of a proof's JSON; byte by byte,
/// they cost as much as the rest of the parse).
#[inline(always)]
fn string_special(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    const QUOTES: u64 = u64::from_le_bytes([b'"'; 8]);
    const BACKSLASHES: u64 = u64::from_le_bytes([b'\\'; 8]);
    const SPACES: u64 = u64::from_le_bytes([0x20; 8]);
    let mut chunks = bytes.chunks_exact(8);
    let mut skipped = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        let quotes = word ^ QUOTES;
        let backslashes = word ^ BACKSLASHES;
        // Each term's lowest flagged byte is exact (a borrow only flags bytes
        // above a true hit), so the lowest of their union is the first hit.
        let hits = (quotes.wrapping_sub(ONES) & !quotes)
            | (backslashes.wrapping_sub(ONES) & !backslashes)
            | (word.wrapping_sub(SPACES) & !word);
        let hits = hits & HIGHS;
        if hits != 0 {
            return Some(skipped + (hits.trailing_zeros() / 8) as usize);
        }
        skipped += 8;
    }
    let at = chunks
        .remainder()
        .iter()
        .position(|&byte| byte == b'"' || byte == b'\\' || byte < 0x20)?;
    Some(skipped + at)
}

/// A vector of `Copy` items that keeps its first `N` inline and moves them all
/// to the heap when a push finds it full.
#[derive(Debug)]
struct Inline<T, const N: usize> {
    items: [T; N],
    len: usize,
    /// All the items once they no longer fit inline (`spilled`).
    heap: Vec<T>,
    spilled: bool,
}

impl<T: Copy, const N: usize> Inline<T, N> {
    /// Empty, its slots holding `blank`.
    fn new(blank: T) -> Self {
        Inline {
            items: [blank; N],
            len: 0,
            heap: Vec::new(),
            spilled: false,
        }
    }

    fn len(&self) -> usize {
        if self.spilled {
            self.heap.len()
        } else {
            self.len
        }
    }

    fn as_slice(&self) -> &[T] {
        if self.spilled {
            &self.heap
        } else {
            self.items.get(..self.len).unwrap_or_default()
        }
    }

    fn last_mut(&mut self) -> Option<&mut T> {
        if self.spilled {
            self.heap.last_mut()
        } else {
            self.items.get_mut(..self.len)?.last_mut()
        }
    }

    fn push(&mut self, item: T) {
        if !self.spilled {
            if let Some(slot) = self.items.get_mut(self.len) {
                *slot = item;
                self.len += 1;
                return;
            }
            self.heap.reserve(2 * N);
            self.heap.extend_from_slice(&self.items);
            self.spilled = true;
        }
        self.heap.push(item);
    }

    fn pop(&mut self) -> Option<T> {
        if self.spilled {
            self.heap.pop()
        } else {
            self.len = self.len.checked_sub(1)?;
            self.items.get(self.len).copied()
        }
    }

    /// Keeps the first `len` items (the others' slots are left as they are).
    fn truncate(&mut self, len: usize) {
        if self.spilled {
            self.heap.truncate(len);
        } else {
            self.len = self.len.min(len);
        }
    }

    /// Moves the items from `start` on to the end of `other`.
    fn move_tail<const M: usize>(&mut self, start: usize, other: &mut Inline<T, M>) {
        for item in self.as_slice().get(start..).unwrap_or_default() {
            other.push(*item);
        }
        self.truncate(start);
    }
}

#[cfg(test)]
mod differential;
#[cfg(test)]
mod tests;

//! Flex search: regular expressions and globs over owner names and over
//! rdata text, as DNSDB's Flex API offers them. One implementation serves
//! the DNSDB paths (`/dnsdb/v2/{regex,glob}/...`) and `dump --regex/--glob`.
//!
//! **Semantics.** A pattern is matched against the presentation form that
//! every surface prints: the owner name, lowercase, with its trailing dot
//! (`www.example.com.`), or the rdata as [`render::rdata`] writes it.
//! Matching ignores case. A regex is searched for anywhere in the subject
//! (unanchored, as DNSDB's FCRE; use `^` and `$` to anchor). A glob must
//! match the whole subject (`*` any run of characters, dots included, `?`
//! one character, `[a-z]`, `[!0-9]`, `[[:digit:]]` classes, `\` escapes),
//! so, as at DNSDB, `*.example.com` matches nothing and `*.example.com.`
//! matches every name below example.com.
//!
//! **Why this engine.** Patterns come from the network, so matching must
//! not backtrack: the `regex` crate guarantees time linear in the subject
//! (RE2 semantics), and patterns are bounded in length ([`MAX_PATTERN`])
//! and in compiled size, so no pattern can take the server down.
//!
//! **Why it is fast.** A store has no index for arbitrary text, but most
//! useful name patterns pin one end of the name, and both ends have an
//! index. From the parsed pattern we take the literal text a match must
//! start with (`^www\.`, glob `www.*`) or end with (`\.example\.com\.$`,
//! glob `*.example.com.`):
//! * a required suffix names a subtree, which is one contiguous range of
//!   the `records` column family (keys are reversed owners);
//! * a required prefix is a handful of ranges of the `names` column family
//!   (forward label order), one per possible length of the partial label;
//! * otherwise every owner in `names` is tried. Names are rendered into a
//!   block of newline-separated lines and the block is searched once
//!   (the engine's literal prefilters and DFA run over 64 KiB at a time
//!   instead of paying a call per name); each line where a match ends is
//!   then checked on its own, since a pattern like `[^a]` can match the
//!   newline between two names.
//!
//! Narrowing only ever widens the candidates: every candidate is matched
//! with the full pattern before it is returned, so a narrowed search gives
//! exactly what a full scan gives (tested below over generated names).
//!
//! rdata has no text index: an rdata search reads `records` in key order,
//! rendering and matching each record's rdata, bounded by the caller's
//! deadline. Results are merged per (rdata, type) as DNSDB gives them, in
//! a map bounded by the number of results asked for.
//!
//! Memory is bounded everywhere: names stream through one block, owner
//! results stream to the caller, rdata results stop at the caller's cap.

use std::collections::HashMap;
use std::time::Instant;

use regex::bytes::{Regex, RegexBuilder};
use regex_syntax::hir::{Hir, HirKind, Look};
use rocksdb::ReadOptions;

use super::{CF_NAMES, Filter, Selector, Store, StoreError, StoredRecord, names_range};
use crate::vocab::value;
use crate::vocab::{Rtype, name, render};

/// Longest pattern accepted, in bytes (DNSDB documents no limit; this one
/// is far above any useful name pattern and keeps compiling cheap).
pub const MAX_PATTERN: usize = 1024;
/// Largest compiled program (the `regex` crate's `size_limit`).
const COMPILED_LIMIT: usize = 1 << 20;
/// Cache of the lazy DFA per search.
const DFA_LIMIT: usize = 4 << 20;
/// Bytes of names searched at once.
const BLOCK_BYTES: usize = 64 << 10;
/// Deadline checks happen every this many records (a clock read each).
const CHECK_EVERY: u32 = 256;

/// Regex or glob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syntax {
    Regex,
    Glob,
}

impl Syntax {
    pub fn as_str(self) -> &'static str {
        match self {
            Syntax::Regex => "regex",
            Syntax::Glob => "glob",
        }
    }
}

/// A pattern that cannot be used (HTTP 400).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PatternError {
    #[error("pattern is {0} bytes; at most {MAX_PATTERN} are accepted")]
    TooLong(usize),
    #[error("malformed glob: {0}")]
    Glob(String),
    #[error("malformed regex: {0}")]
    Regex(String),
}

/// A compiled Flex pattern.
#[derive(Clone, Debug)]
pub struct Pattern {
    syntax: Syntax,
    source: String,
    /// Matches one subject.
    line: Regex,
    /// The same pattern in multi-line mode, for searching a block of
    /// newline-separated names; `None` if the pattern uses `\A` or `\z`,
    /// which mean something else in a block.
    block: Option<Regex>,
    /// Lowercase literal every matching subject starts with.
    prefix: Option<String>,
    /// Lowercase literal every matching subject ends with.
    suffix: Option<String>,
}

/// Where the owner names a pattern can match are.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Plan {
    /// Strictly below this (reversed) name: one `records` range.
    Subtree(Vec<u8>),
    /// `names` keys starting with one of these forward prefixes.
    Prefixes(Vec<Vec<u8>>),
    /// Every name.
    All,
}

impl Pattern {
    pub fn new(syntax: Syntax, text: &str) -> Result<Pattern, PatternError> {
        if text.len() > MAX_PATTERN {
            return Err(PatternError::TooLong(text.len()));
        }
        let regex = match syntax {
            Syntax::Regex => text.to_string(),
            Syntax::Glob => glob_to_regex(text).map_err(PatternError::Glob)?,
        };
        let build = |multi_line: bool| {
            RegexBuilder::new(&regex)
                .case_insensitive(true)
                .multi_line(multi_line)
                .size_limit(COMPILED_LIMIT)
                .dfa_size_limit(DFA_LIMIT)
                .build()
                .map_err(|e| PatternError::Regex(e.to_string()))
        };
        let line = build(false)?;
        let (prefix, suffix, block_safe) = analyse(&regex);
        let block = if block_safe { Some(build(true)?) } else { None };
        Ok(Pattern {
            syntax,
            source: text.to_string(),
            line,
            block,
            prefix,
            suffix,
        })
    }

    pub fn syntax(&self) -> Syntax {
        self.syntax
    }

    /// The pattern as given.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether a subject (presentation text) matches.
    pub fn is_match(&self, subject: &[u8]) -> bool {
        self.line.is_match(subject)
    }

    /// The ranges to read for owner names.
    fn plan(&self) -> Plan {
        if let Some(parent) = self.suffix.as_deref().and_then(suffix_parent) {
            return Plan::Subtree(parent);
        }
        if let Some(prefixes) = self.prefix.as_deref().and_then(forward_prefixes) {
            return Plan::Prefixes(prefixes);
        }
        Plan::All
    }
}

/// Translates a DNSDB glob into an anchored regex.
fn glob_to_regex(glob: &str) -> Result<String, String> {
    let mut out = String::with_capacity(glob.len() * 2 + 2);
    out.push('^');
    let mut chars = glob.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            '\\' => {
                let next = chars
                    .next()
                    .ok_or_else(|| "ends with an unescaped backslash".to_string())?;
                push_literal(&mut out, next);
            }
            '[' => {
                out.push('[');
                if matches!(chars.peek(), Some('!' | '^')) {
                    chars.next();
                    out.push('^');
                }
                let mut first = true;
                loop {
                    let c = chars
                        .next()
                        .ok_or_else(|| "unterminated character class".to_string())?;
                    if c == ']' && !first {
                        break;
                    }
                    first = false;
                    if c == '[' {
                        match chars.peek() {
                            Some(':') => {
                                chars.next();
                                let mut class = String::new();
                                loop {
                                    match chars.next() {
                                        Some(':') if chars.peek() == Some(&']') => {
                                            chars.next();
                                            break;
                                        }
                                        Some(x) => class.push(x),
                                        None => {
                                            return Err("unterminated [: class".to_string());
                                        }
                                    }
                                }
                                if !POSIX_CLASSES.contains(&class.as_str()) {
                                    return Err(format!("unknown class [:{class}:]"));
                                }
                                out.push_str(&format!("[:{class}:]"));
                                continue;
                            }
                            Some('.' | '=') => {
                                return Err(
                                    "collating elements ([. and [=) are not supported".to_string()
                                );
                            }
                            _ => {}
                        }
                    }
                    push_class_char(&mut out, c);
                    // A range: `a-z`, unless the `-` ends the class.
                    let mut ahead = chars.clone();
                    if ahead.next() == Some('-')
                        && let Some(hi) = ahead.next()
                        && hi != ']'
                    {
                        chars.next();
                        chars.next();
                        out.push('-');
                        push_class_char(&mut out, hi);
                    }
                }
                out.push(']');
            }
            c => push_literal(&mut out, c),
        }
    }
    out.push('$');
    Ok(out)
}

const POSIX_CLASSES: [&str; 12] = [
    "alnum", "alpha", "blank", "cntrl", "digit", "graph", "lower", "print", "punct", "space",
    "upper", "xdigit",
];

fn push_literal(out: &mut String, c: char) {
    let mut buf = [0; 4];
    out.push_str(&regex_syntax::escape(c.encode_utf8(&mut buf)));
}

fn push_class_char(out: &mut String, c: char) {
    if matches!(c, '\\' | '[' | ']' | '^' | '-' | '&' | '~') {
        out.push('\\');
    }
    out.push(c);
}

/// The literal text a match must start with (if `^` anchors it) and end
/// with (if `$` does), lowercased, and whether the pattern can be searched
/// in a newline-separated block. Parsed case-sensitively so literals stay
/// literals (matching itself ignores case, and names are stored lowercase).
fn analyse(regex: &str) -> (Option<String>, Option<String>, bool) {
    let parse = |multi_line: bool| {
        regex_syntax::ParserBuilder::new()
            .multi_line(multi_line)
            .utf8(false)
            .build()
            .parse(regex)
            .ok()
    };
    let block_safe = parse(true).is_some_and(|hir| {
        let looks = hir.properties().look_set();
        !looks.contains(Look::Start) && !looks.contains(Look::End)
    });
    let Some(hir) = parse(false) else {
        return (None, None, block_safe);
    };
    let HirKind::Concat(parts) = hir.kind() else {
        return (None, None, block_safe);
    };
    let literal_run = |parts: &mut dyn Iterator<Item = &Hir>, reverse: bool| {
        let mut bytes: Vec<u8> = Vec::new();
        for part in parts {
            let HirKind::Literal(lit) = part.kind() else {
                break;
            };
            if reverse {
                let mut l = lit.0.to_vec();
                l.extend_from_slice(&bytes);
                bytes = l;
            } else {
                bytes.extend_from_slice(&lit.0);
            }
        }
        (!bytes.is_empty()).then(|| String::from_utf8_lossy(&bytes).to_ascii_lowercase())
    };
    let is_look = |h: Option<&Hir>, look: Look| matches!(h.map(Hir::kind), Some(HirKind::Look(l)) if *l == look);
    let prefix = if is_look(parts.first(), Look::Start) {
        literal_run(&mut parts.iter().skip(1), false)
    } else {
        None
    };
    let suffix = if is_look(parts.last(), Look::End) {
        literal_run(&mut parts.iter().rev().skip(1), true)
    } else {
        None
    };
    (prefix, suffix, block_safe)
}

/// For a required name suffix, the (reversed) name every match lies
/// strictly below: the labels after the suffix's first dot
/// (`.example.com.` and `ple.example.com.` both give `example.com.`).
/// `None` when that is the root or the text has escapes.
fn suffix_parent(suffix: &str) -> Option<Vec<u8>> {
    if suffix.contains('\\') || !suffix.ends_with('.') {
        return None;
    }
    let dot = suffix.find('.')?;
    let parent = &suffix[dot + 1..];
    if parent.is_empty() {
        return None;
    }
    name::encode_presentation(parent).ok()
}

/// For a required name prefix, the forward-encoded key prefixes of the
/// `names` entries that can match: the complete labels, then the partial
/// label under each length it can have. `None` if the text has escapes;
/// an empty list if no name can start so.
fn forward_prefixes(prefix: &str) -> Option<Vec<Vec<u8>>> {
    if prefix.contains('\\') {
        return None;
    }
    let mut labels: Vec<&str> = prefix.split('.').collect();
    let partial = labels.pop().unwrap_or("");
    let mut base = Vec::new();
    for label in labels {
        if label.is_empty() || label.len() > 63 {
            return Some(Vec::new());
        }
        base.push(label.len() as u8);
        base.extend_from_slice(label.as_bytes());
    }
    if partial.is_empty() {
        return Some(vec![base]);
    }
    if partial.len() > 63 {
        return Some(Vec::new());
    }
    Some(
        (partial.len()..=63)
            .map(|len| {
                let mut p = base.clone();
                p.push(len as u8);
                p.extend_from_slice(partial.as_bytes());
                p
            })
            .collect(),
    )
}

/// How a scan ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scan {
    /// Everything was read.
    Complete,
    /// The caller stopped it (or, for rdata, the result cap was reached).
    Stopped,
    /// The deadline passed first.
    TimedOut,
}

/// What a scan read (for metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Owner names matched against the pattern.
    pub names: u64,
    /// Records read.
    pub records: u64,
}

/// One (owner, type) of a names search, merged over its records: counts
/// summed, first and last seen the earliest and latest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameHit {
    /// Reversed encoding.
    pub owner: Vec<u8>,
    pub rtype: Rtype,
    pub count: u64,
    pub first: u64,
    pub last: u64,
}

/// One (rdata, type) of an rdata search, merged over every owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RdataHit {
    pub rtype: Rtype,
    /// Canonical wire form.
    pub rdata: Vec<u8>,
    /// Presentation text (what was matched).
    pub text: String,
    pub count: u64,
    pub first: u64,
    pub last: u64,
}

/// The deadline, checked every [`CHECK_EVERY`] calls.
struct Clock {
    deadline: Option<Instant>,
    ticks: u32,
}

impl Clock {
    fn expired(&mut self) -> bool {
        self.ticks = self.ticks.wrapping_add(1);
        self.ticks.is_multiple_of(CHECK_EVERY) && self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    fn expired_now(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

/// Newline-separated names searched together, with their `names` keys.
#[derive(Default)]
struct Block {
    text: Vec<u8>,
    /// Start of each line in `text` (its end is the next start - 1).
    starts: Vec<usize>,
    keys: Vec<u8>,
    key_ends: Vec<usize>,
}

impl Block {
    fn clear(&mut self) {
        self.text.clear();
        self.starts.clear();
        self.keys.clear();
        self.key_ends.clear();
    }

    /// Line `i` without its newline (every line ends with one).
    fn line(&self, i: usize) -> &[u8] {
        let end = self.starts.get(i + 1).copied().unwrap_or(self.text.len()) - 1;
        &self.text[self.starts[i]..end]
    }

    fn key(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.key_ends[i - 1] };
        &self.keys[start..self.key_ends[i]]
    }

    /// Indexes of the lines that match `pattern`, in order.
    fn matches(&self, pattern: &Pattern, out: &mut Vec<usize>) {
        out.clear();
        let Some(block) = &pattern.block else {
            out.extend((0..self.starts.len()).filter(|&i| pattern.line.is_match(self.line(i))));
            return;
        };
        let mut pos = 0;
        while pos < self.text.len() {
            let Some(end) = block.shortest_match_at(&self.text, pos) else {
                break;
            };
            // No match ends before `end`, so no line before the one
            // holding `end` matches on its own; that line is checked
            // alone, as the match may have spanned a newline.
            let i = self.starts.partition_point(|&s| s <= end).saturating_sub(1);
            if pattern.line.is_match(self.line(i)) {
                out.push(i);
            }
            match self.starts.get(i + 1) {
                Some(&next) => pos = next,
                None => break,
            }
        }
    }
}

impl Store {
    /// Calls `each` with every record passing `filter` whose owner name
    /// matches `pattern` and not `exclude`; an owner's records come
    /// together, in key order. Stops when `each` returns false.
    pub fn flex_owner_records(
        &self,
        pattern: &Pattern,
        exclude: Option<&Pattern>,
        filter: &Filter,
        deadline: Option<Instant>,
        stats: &mut ScanStats,
        mut each: impl FnMut(&StoredRecord) -> bool,
    ) -> Result<Scan, StoreError> {
        let mut clock = Clock { deadline, ticks: 0 };
        let wanted =
            |text: &[u8]| pattern.is_match(text) && !exclude.is_some_and(|x| x.is_match(text));
        match pattern.plan() {
            Plan::Subtree(parent) => {
                let selector = Selector::Owner {
                    name: parent,
                    wildcard: true,
                };
                let mut current: Vec<u8> = Vec::new();
                let mut current_ok = false;
                let mut text = String::new();
                for r in self.records(&selector, filter) {
                    let r = r?;
                    stats.records += 1;
                    if clock.expired() {
                        return Ok(Scan::TimedOut);
                    }
                    if r.owner != current {
                        current.clone_from(&r.owner);
                        text.clear();
                        name::write_presentation(&r.owner, &mut text);
                        stats.names += 1;
                        current_ok = wanted(text.as_bytes());
                    }
                    if current_ok && !each(&r) {
                        return Ok(Scan::Stopped);
                    }
                }
                Ok(Scan::Complete)
            }
            Plan::Prefixes(prefixes) => {
                for prefix in prefixes {
                    let scan = self.flex_names_range(
                        &prefix, pattern, exclude, filter, &mut clock, stats, &mut each,
                    )?;
                    if scan != Scan::Complete {
                        return Ok(scan);
                    }
                }
                Ok(Scan::Complete)
            }
            Plan::All => {
                self.flex_names_range(&[], pattern, exclude, filter, &mut clock, stats, &mut each)
            }
        }
    }

    /// The names scan over one forward prefix of `names`.
    #[allow(clippy::too_many_arguments)]
    fn flex_names_range(
        &self,
        prefix: &[u8],
        pattern: &Pattern,
        exclude: Option<&Pattern>,
        filter: &Filter,
        clock: &mut Clock,
        stats: &mut ScanStats,
        each: &mut dyn FnMut(&StoredRecord) -> bool,
    ) -> Result<Scan, StoreError> {
        let range = names_range(prefix);
        let cutoff = self.retention_cutoff();
        let mut opts = ReadOptions::default();
        if let Some(end) = &range.end {
            opts.set_iterate_upper_bound(end.clone());
        }
        opts.fill_cache(false);
        let mut it = self.db().raw_iterator_cf_opt(self.cf(CF_NAMES), opts);
        it.seek(&range.start);
        let mut block = Block::default();
        let mut reversed = Vec::new();
        let mut hits = Vec::new();
        let mut started = false;
        loop {
            // A scan always makes progress (one block), and stops at the
            // deadline only while there is more to read.
            if !it.valid() {
                it.status().map_err(self.error("reading"))?;
                return Ok(Scan::Complete);
            }
            if started && clock.expired_now() {
                return Ok(Scan::TimedOut);
            }
            started = true;
            block.clear();
            while block.text.len() < BLOCK_BYTES {
                let Some(key) = it.key() else {
                    break;
                };
                // The value (the owner's last sighting) only matters under
                // retention; reading it costs a call per name.
                let live = cutoff == 0
                    || it
                        .value()
                        .and_then(value::last_seen)
                        .is_none_or(|last| last >= cutoff);
                if live {
                    block.starts.push(block.text.len());
                    name::write_presentation_forward(key, &mut block.text);
                    block.text.push(b'\n');
                    block.keys.extend_from_slice(key);
                    block.key_ends.push(block.keys.len());
                }
                it.next();
            }
            it.status().map_err(self.error("reading"))?;
            if block.starts.is_empty() {
                return Ok(Scan::Complete);
            }
            stats.names += block.starts.len() as u64;
            block.matches(pattern, &mut hits);
            for &i in &hits {
                if exclude.is_some_and(|x| x.is_match(block.line(i))) {
                    continue;
                }
                reversed.clear();
                name::from_forward(block.key(i), &mut reversed);
                let selector = Selector::Owner {
                    name: reversed.clone(),
                    wildcard: false,
                };
                for r in self.records(&selector, filter) {
                    let r = r?;
                    stats.records += 1;
                    if !each(&r) {
                        return Ok(Scan::Stopped);
                    }
                }
            }
        }
    }

    /// Owner names search, merged per (owner, type) as DNSDB's `rrnames`
    /// Flex search returns them: `type_ok` decides which types count.
    #[allow(clippy::too_many_arguments)]
    pub fn flex_rrnames(
        &self,
        pattern: &Pattern,
        exclude: Option<&Pattern>,
        filter: &Filter,
        type_ok: impl Fn(Rtype) -> bool,
        deadline: Option<Instant>,
        stats: &mut ScanStats,
        mut each: impl FnMut(&NameHit) -> bool,
    ) -> Result<Scan, StoreError> {
        let mut pending: Option<NameHit> = None;
        let mut stopped = false;
        let scan = self.flex_owner_records(pattern, exclude, filter, deadline, stats, |r| {
            if !type_ok(r.rtype) {
                return true;
            }
            if let Some(p) = &mut pending
                && p.owner == r.owner
                && p.rtype == r.rtype
            {
                p.count += r.value.count;
                p.first = p.first.min(r.value.first);
                p.last = p.last.max(r.value.last);
                return true;
            }
            let done = pending.replace(NameHit {
                owner: r.owner.clone(),
                rtype: r.rtype,
                count: r.value.count,
                first: r.value.first,
                last: r.value.last,
            });
            if let Some(done) = done
                && !each(&done)
            {
                stopped = true;
                return false;
            }
            true
        })?;
        if stopped {
            return Ok(Scan::Stopped);
        }
        // A timed-out scan may have cut the last group short: drop it
        // rather than report a partial count.
        if scan != Scan::TimedOut
            && let Some(last) = pending
            && !each(&last)
        {
            return Ok(Scan::Stopped);
        }
        Ok(scan)
    }

    /// rdata search: every record passing `filter` and `type_ok` whose
    /// rendered rdata matches `pattern` and not `exclude`, merged per
    /// (rdata, type) in order of first appearance. Stops with
    /// [`Scan::Stopped`] once `cap` distinct results are held.
    #[allow(clippy::too_many_arguments)]
    pub fn flex_rdata(
        &self,
        pattern: &Pattern,
        exclude: Option<&Pattern>,
        filter: &Filter,
        type_ok: impl Fn(Rtype) -> bool,
        cap: usize,
        deadline: Option<Instant>,
        stats: &mut ScanStats,
    ) -> Result<(Vec<RdataHit>, Scan), StoreError> {
        let mut clock = Clock { deadline, ticks: 0 };
        let mut hits: Vec<RdataHit> = Vec::new();
        let mut index: HashMap<(u16, Vec<u8>), usize> = HashMap::new();
        if cap == 0 {
            return Ok((hits, Scan::Stopped));
        }
        for r in self.records(&Selector::All, filter) {
            let r = r?;
            stats.records += 1;
            if clock.expired() {
                return Ok((hits, Scan::TimedOut));
            }
            if !type_ok(r.rtype) {
                continue;
            }
            let key = (r.rtype.to_int(), r.rdata);
            if let Some(&i) = index.get(&key) {
                let h = &mut hits[i];
                h.count += r.value.count;
                h.first = h.first.min(r.value.first);
                h.last = h.last.max(r.value.last);
                continue;
            }
            let text = render::rdata(r.rtype, &key.1);
            if !pattern.is_match(text.as_bytes())
                || exclude.is_some_and(|x| x.is_match(text.as_bytes()))
            {
                continue;
            }
            index.insert(key.clone(), hits.len());
            hits.push(RdataHit {
                rtype: r.rtype,
                rdata: key.1,
                text,
                count: r.value.count,
                first: r.value.first,
                last: r.value.last,
            });
            if hits.len() >= cap {
                return Ok((hits, Scan::Stopped));
            }
        }
        Ok((hits, Scan::Complete))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regex(p: &str) -> Pattern {
        Pattern::new(Syntax::Regex, p).unwrap()
    }

    fn glob(p: &str) -> Pattern {
        Pattern::new(Syntax::Glob, p).unwrap()
    }

    fn enc(s: &str) -> Vec<u8> {
        name::encode_presentation(s).unwrap()
    }

    #[test]
    fn globs_translate_and_anchor() {
        assert_eq!(
            glob_to_regex("*.example.com.").unwrap(),
            r"^.*\.example\.com\.$"
        );
        assert_eq!(glob_to_regex("w?w.*").unwrap(), r"^w.w\..*$");
        assert_eq!(glob_to_regex("[!a-c]x").unwrap(), r"^[^a-c]x$");
        assert_eq!(glob_to_regex("[]a]").unwrap(), r"^[\]a]$");
        assert_eq!(glob_to_regex("[a-]").unwrap(), r"^[a\-]$");
        assert_eq!(glob_to_regex("[[:digit:]]").unwrap(), r"^[[:digit:]]$");
        assert_eq!(glob_to_regex(r"a\*b").unwrap(), r"^a\*b$");
        let g = glob("*.example.com.");
        assert!(g.is_match(b"www.example.com."));
        assert!(g.is_match(b"a.b.example.com."));
        assert!(!g.is_match(b"example.com."));
        assert!(!g.is_match(b"www.example.com.au."));
        // Globs are anchored and the trailing dot is part of the name.
        assert!(!glob("*.example.com").is_match(b"www.example.com."));
        assert!(glob("WWW.*").is_match(b"www.example.com."));
        assert!(glob("h[0-9]?.*").is_match(b"h12.d.test."));
        assert!(!glob("h[!0-9]*").is_match(b"h1.test."));
        assert!(glob("h[[:digit:]]*").is_match(b"h1.test."));
    }

    #[test]
    fn bad_patterns_are_refused() {
        for (syntax, p) in [
            (Syntax::Regex, "("),
            (Syntax::Regex, "a{5,1}"),
            (Syntax::Regex, "[z-a]"),
            (Syntax::Glob, "[abc"),
            (Syntax::Glob, "abc\\"),
            (Syntax::Glob, "[[:nope:]]"),
            (Syntax::Glob, "[z-a]"),
            (Syntax::Glob, "[[.a.]]"),
        ] {
            assert!(Pattern::new(syntax, p).is_err(), "{p}");
        }
        let long = "a".repeat(MAX_PATTERN + 1);
        assert_eq!(
            Pattern::new(Syntax::Regex, &long).unwrap_err(),
            PatternError::TooLong(MAX_PATTERN + 1)
        );
        // Small text, huge program: refused by the compiled-size bound.
        assert!(matches!(
            Pattern::new(Syntax::Regex, "(((a{100}){100}){100})"),
            Err(PatternError::Regex(_))
        ));
    }

    #[test]
    fn regexes_search_unanchored_and_ignore_case() {
        let r = regex(r"EXAMPLE\.com\.");
        assert!(r.is_match(b"www.example.com."));
        assert!(!regex(r"\.com$").is_match(b"www.example.com."));
        assert!(regex(r"\.com\.$").is_match(b"www.example.com."));
        assert!(regex("").is_match(b"x."));
    }

    #[test]
    fn literal_ends_become_ranges() {
        let r = regex(r"\.example\.com\.$");
        assert_eq!(r.suffix.as_deref(), Some(".example.com."));
        assert_eq!(r.plan(), Plan::Subtree(enc("example.com")));
        assert_eq!(
            regex(r"ple\.Example\.com\.$").plan(),
            Plan::Subtree(enc("example.com"))
        );
        assert_eq!(
            glob("*.example.com.").plan(),
            Plan::Subtree(enc("example.com"))
        );
        assert_eq!(glob("*com.").plan(), Plan::All);
        assert_eq!(regex(r"\.com$").plan(), Plan::All);
        assert_eq!(regex(r"^www\.ex").prefix.as_deref(), Some("www.ex"));
        match regex(r"^www\.ex").plan() {
            Plan::Prefixes(p) => {
                assert_eq!(p.len(), 62);
                assert_eq!(p[0], b"\x03www\x02ex".to_vec());
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            glob("www.example.*").plan(),
            Plan::Prefixes(vec![b"\x03www\x07example".to_vec()])
        );
        assert_eq!(regex(r"^a\.\.b").plan(), Plan::Prefixes(vec![]));
        assert_eq!(regex("^(www|ftp)").plan(), Plan::All);
        assert_eq!(regex("www$|^ftp").plan(), Plan::All);
        assert!(regex("^x").block.is_some());
        assert!(regex(r"\Ax").block.is_none());
    }

    /// Lines of a block, checked against matching each name on its own,
    /// including patterns that can match the newline between names.
    #[test]
    fn block_search_agrees_with_per_line() {
        let names: Vec<String> = (0..500)
            .map(|i| format!("h{i}.d{}.bench-{}.test.", i % 37, i % 7))
            .collect();
        let mut block = Block::default();
        for n in &names {
            block.starts.push(block.text.len());
            block.text.extend_from_slice(n.as_bytes());
            block.text.push(b'\n');
        }
        for p in [
            r"h1[0-9]*\.d",
            r"^h4",
            r"test\.$",
            r"[^a]h2",
            r"\.test\.\s*h3",
            r"bench-3",
            "",
            r"(?s)1.*h2",
            r"\bh9",
            "zzz",
        ] {
            let pattern = regex(p);
            assert!(pattern.block.is_some());
            let mut got = Vec::new();
            block.matches(&pattern, &mut got);
            let want: Vec<usize> = (0..names.len())
                .filter(|&i| pattern.is_match(names[i].as_bytes()))
                .collect();
            assert_eq!(got, want, "{p}");
        }
    }

    /// The narrowed scans return exactly what a brute-force match over
    /// every stored owner returns.
    #[test]
    fn narrowed_search_equals_brute_force() {
        use crate::vocab::batch::Batch;
        use crate::vocab::key;
        use crate::vocab::value::{Origin, Value};

        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let mut batch = Batch::default();
        let mut owners = Vec::new();
        // Generated names: a little pseudo-random tree with shared
        // prefixes and suffixes, labels of varied lengths.
        let words = [
            "www", "ex", "example", "a", "mail", "w", "exa", "com", "x-1", "ww",
        ];
        let mut seed = 7u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize
        };
        for _ in 0..600 {
            let labels = 1 + next() % 4;
            let name: Vec<&str> = (0..labels).map(|_| words[next() % words.len()]).collect();
            let name = name.join(".");
            owners.push(name.clone());
            let mut k = Vec::new();
            key::record_key(
                &mut k,
                &enc(&name),
                Rtype::A,
                &[192, 0, 2, (next() % 3) as u8],
            );
            batch.records.insert(
                &k,
                Value {
                    count: 1,
                    first: 10,
                    last: 20,
                    ttl: 60,
                    origin: Origin::WIRE,
                },
            );
        }
        store.write(&batch).unwrap();
        let mut all: Vec<String> = owners.iter().map(|o| format!("{o}.")).collect();
        all.sort();
        all.dedup();
        for (syntax, p) in [
            (Syntax::Regex, r"\.example\.com\.$"),
            (Syntax::Regex, r"ple\.com\.$"),
            (Syntax::Regex, r"a\.com\.$"),
            (Syntax::Regex, r"^www\.ex"),
            (Syntax::Regex, r"^w"),
            (Syntax::Regex, r"^www\."),
            (Syntax::Regex, r"^ex$"),
            (Syntax::Regex, r"x-1"),
            (Syntax::Regex, r"^mail\.a\.com\.$"),
            (Syntax::Glob, "*.example.com."),
            (Syntax::Glob, "*a.com."),
            (Syntax::Glob, "www.*"),
            (Syntax::Glob, "w*.ex*"),
            (Syntax::Glob, "ww?.*"),
            (Syntax::Glob, "*"),
        ] {
            let pattern = Pattern::new(syntax, p).unwrap();
            let mut got = Vec::new();
            let mut stats = ScanStats::default();
            store
                .flex_rrnames(
                    &pattern,
                    None,
                    &Filter::default(),
                    |_| true,
                    None,
                    &mut stats,
                    |h| {
                        got.push(name::presentation(&h.owner));
                        true
                    },
                )
                .unwrap();
            got.sort();
            let want: Vec<String> = all
                .iter()
                .filter(|n| pattern.is_match(n.as_bytes()))
                .cloned()
                .collect();
            assert_eq!(got, want, "{p} ({:?})", pattern.plan());
        }
        // exclude drops what it matches.
        let mut got = Vec::new();
        store
            .flex_rrnames(
                &regex("^www"),
                Some(&regex("com")),
                &Filter::default(),
                |_| true,
                None,
                &mut ScanStats::default(),
                |h| {
                    got.push(name::presentation(&h.owner));
                    true
                },
            )
            .unwrap();
        assert!(
            !got.is_empty()
                && got
                    .iter()
                    .all(|n| n.starts_with("www") && !n.contains("com"))
        );
        // rdata: merged per (rdata, type) over owners.
        let (hits, scan) = store
            .flex_rdata(
                &regex(r"^192\.0\.2\.[01]$"),
                None,
                &Filter::default(),
                |_| true,
                10,
                None,
                &mut ScanStats::default(),
            )
            .unwrap();
        assert_eq!(scan, Scan::Complete);
        let mut texts: Vec<&str> = hits.iter().map(|h| h.text.as_str()).collect();
        texts.sort();
        assert_eq!(texts, ["192.0.2.0", "192.0.2.1"]);
        let total: u64 = hits.iter().map(|h| h.count).sum();
        assert!(total > 2);
    }
}

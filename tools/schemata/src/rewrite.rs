//! The rewrite: every mutant cargo-mutants lists for a file becomes a branch that runs
//! only when the process's mutant switch names it, so that one build holds them all
//! (mutation schemata, Untch, Offutt and Harrold 1993).
//!
//! cargo-mutants gives each mutant's span (the operator, the guard, the arm, the body)
//! and its replacement text. The rewrite parses the file with syn to find the rest of
//! each mutated expression (an operator's operands, an arm's pattern, a function's
//! block), and splices text: nothing of the file but the mutated expressions changes.
//!
//! - a binary operator: `(if crate::M(id) { L op' R } else { L op R })`;
//! - a unary operator deleted: `(if crate::M(id) { X } else { !X })`;
//! - a match guard replaced: `(if crate::M(id) { true } else { G })`;
//! - a match arm deleted: the arm gains the guard `if !crate::M(id)` (ANDed with its own);
//! - a function's value: its block begins `if crate::M(id) { return value; }`.
//!
//! Mutants in a constant context (a `const` or `static` item, a `const fn`, an array
//! length, an enum discriminant) cannot call the switch, and a few genres (a struct
//! field deleted) are not rewritten: those are left to cargo-mutants, one build each.

use std::collections::HashSet;

use proc_macro2::LineColumn;
use serde::Deserialize;
use syn::spanned::Spanned;
use syn::visit::Visit;

/// The function the rewritten code calls; `main` appends it to the crate's root.
pub const SWITCH: &str = "crate::__twinloop_mutant";

/// A position in cargo-mutants' listing: line and column, both from 1 (the column in
/// characters).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub struct Position {
    /// The line, from 1.
    pub line: usize,
    /// The column, from 1, in characters.
    pub column: usize,
}

/// A span in cargo-mutants' listing; `end` is just past the last character.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub struct Span {
    /// The first character.
    pub start: Position,
    /// Just past the last character.
    pub end: Position,
}

/// One mutant of `cargo mutants --list --json` (the fields this tool reads).
#[derive(Debug, Clone, Deserialize)]
pub struct Mutant {
    /// The file, relative to the workspace root.
    pub file: String,
    /// The kind of change: `BinaryOperator`, `UnaryOperator`, `FnValue`,
    /// `MatchArmGuard`, `MatchArm`, `StructField`.
    pub genre: String,
    /// The name cargo-mutants shows: `file:line:column: what`.
    pub name: String,
    /// The text put in place of the span.
    pub replacement: String,
    /// What the mutant replaces.
    pub span: Span,
}

/// A byte range of a file's text.
type Range = (usize, usize);

/// What a site is: the expression (or block, or arm) one or more mutants change.
#[derive(Debug, Clone)]
enum Kind {
    /// A binary operator between two operands.
    Binary { left: Range, op: Range, right: Range },
    /// A unary operator before its operand.
    Unary { op: Range, operand: Range },
    /// A match arm's guard expression.
    Guard,
    /// A match arm: its pattern's end and its guard, if it has one.
    Arm { pattern_end: usize, guard: Option<Range> },
    /// A function's block, braces included.
    Body,
}

#[derive(Debug, Clone)]
struct Site {
    range: Range,
    kind: Kind,
    /// Within a constant context: no run-time switch there.
    constant: bool,
    /// The mutants at this site: their ids and replacement texts.
    mutants: Vec<(u32, String)>,
}

impl Site {
    /// Of two sites over the same text the one with the higher rank is outside: a
    /// function's block, an arm, a guard, an operator.
    fn rank(&self) -> u8 {
        match self.kind {
            Kind::Body => 4,
            Kind::Arm { .. } => 3,
            Kind::Guard => 2,
            Kind::Binary { .. } | Kind::Unary { .. } => 1,
        }
    }
}

/// Where the rewritten text of a mutant's branch, or of a whole site, lies in the output:
/// a compiler error there is that mutant's (or that site's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// One mutant's branch.
    Mutant(u32),
    /// A whole site: its mutants' ids are in `Rewrite::site_mutants`.
    Site(usize),
}

/// One file rewritten.
#[derive(Debug, Default)]
pub struct Rewrite {
    /// The new text.
    pub text: String,
    /// The mutants in it (their branches are in the text).
    pub placed: Vec<u32>,
    /// The mutants left out, each with why (a constant context, a genre not rewritten,
    /// no site found for its span).
    pub left_out: Vec<(u32, String)>,
    /// Output ranges and their owners, for mapping a compiler error to a mutant.
    marks: Vec<(Range, Owner)>,
    /// Each site's mutants, by the index `Owner::Site` names.
    site_mutants: Vec<Vec<u32>>,
}

impl Rewrite {
    /// The mutants a compiler error at byte `offset` of the output is blamed on: the
    /// innermost branch or site around it; none when it lies outside every site.
    pub fn blame(&self, offset: usize) -> Vec<u32> {
        let inner = self
            .marks
            .iter()
            .filter(|((a, b), _)| *a <= offset && offset < *b)
            .min_by_key(|((a, b), _)| b - a);
        match inner {
            Some((_, Owner::Mutant(id))) => vec![*id],
            Some((_, Owner::Site(index))) => self.site_mutants[*index].clone(),
            None => Vec::new(),
        }
    }
}

/// Byte offsets of the text's lines.
struct Lines<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Lines { text, starts }
    }

    /// The byte offset of line `line` (from 1), character `column` (from 0); `None`
    /// past the text.
    fn offset(&self, line: usize, column: usize) -> Option<usize> {
        let start = *self.starts.get(line.checked_sub(1)?)?;
        let rest = &self.text[start..];
        let line_text = &rest[..rest.find('\n').unwrap_or(rest.len())];
        if column == line_text.chars().count() {
            return Some(start + line_text.len());
        }
        line_text.char_indices().nth(column).map(|(i, _)| start + i)
    }

    fn at(&self, position: LineColumn) -> usize {
        // proc-macro2's positions come from this very text.
        self.offset(position.line, position.column).unwrap_or(self.text.len())
    }

    fn range(&self, span: proc_macro2::Span) -> Range {
        (self.at(span.start()), self.at(span.end()))
    }

    /// A compiler's position (line and column from 1, in characters) as a byte offset.
    pub fn compiler_position(&self, line: usize, column: usize) -> Option<usize> {
        self.offset(line, column.checked_sub(1)?)
    }
}

/// Walks a file's syntax tree and records every place a mutant could be.
struct Finder<'a> {
    lines: &'a Lines<'a>,
    /// Depth of constant contexts around the walk.
    constant: usize,
    sites: Vec<Site>,
}

impl Finder<'_> {
    fn push(&mut self, range: Range, kind: Kind) {
        self.sites.push(Site {
            range,
            kind,
            constant: self.constant > 0,
            mutants: Vec::new(),
        });
    }

    fn in_constant(&mut self, walk: impl FnOnce(&mut Self)) {
        self.constant += 1;
        walk(self);
        self.constant -= 1;
    }

    fn body(&mut self, constness: bool, block: &syn::Block, walk: impl FnOnce(&mut Self)) {
        let range = self.lines.range(block.span());
        if constness {
            self.in_constant(|f| {
                f.push(range, Kind::Body);
                walk(f);
            });
        } else {
            self.push(range, Kind::Body);
            walk(self);
        }
    }
}

impl<'ast> Visit<'ast> for Finder<'_> {
    fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
        let constness = item.sig.constness.is_some();
        self.body(constness, &item.block, |f| syn::visit::visit_item_fn(f, item));
    }

    fn visit_impl_item_fn(&mut self, item: &'ast syn::ImplItemFn) {
        let constness = item.sig.constness.is_some();
        self.body(constness, &item.block, |f| syn::visit::visit_impl_item_fn(f, item));
    }

    fn visit_trait_item_fn(&mut self, item: &'ast syn::TraitItemFn) {
        match &item.default {
            Some(block) => {
                let constness = item.sig.constness.is_some();
                self.body(constness, block, |f| syn::visit::visit_trait_item_fn(f, item));
            }
            None => syn::visit::visit_trait_item_fn(self, item),
        }
    }

    fn visit_item_const(&mut self, item: &'ast syn::ItemConst) {
        self.in_constant(|f| syn::visit::visit_item_const(f, item));
    }

    fn visit_impl_item_const(&mut self, item: &'ast syn::ImplItemConst) {
        self.in_constant(|f| syn::visit::visit_impl_item_const(f, item));
    }

    fn visit_trait_item_const(&mut self, item: &'ast syn::TraitItemConst) {
        self.in_constant(|f| syn::visit::visit_trait_item_const(f, item));
    }

    fn visit_item_static(&mut self, item: &'ast syn::ItemStatic) {
        self.in_constant(|f| syn::visit::visit_item_static(f, item));
    }

    fn visit_type_array(&mut self, item: &'ast syn::TypeArray) {
        self.in_constant(|f| syn::visit::visit_type_array(f, item));
    }

    fn visit_expr_repeat(&mut self, item: &'ast syn::ExprRepeat) {
        // `[x; N]`: N is a constant.
        self.visit_expr(&item.expr);
        self.in_constant(|f| f.visit_expr(&item.len));
    }

    fn visit_expr_const(&mut self, item: &'ast syn::ExprConst) {
        self.in_constant(|f| syn::visit::visit_expr_const(f, item));
    }

    fn visit_variant(&mut self, item: &'ast syn::Variant) {
        self.in_constant(|f| syn::visit::visit_variant(f, item));
    }

    fn visit_generic_argument(&mut self, item: &'ast syn::GenericArgument) {
        self.in_constant(|f| syn::visit::visit_generic_argument(f, item));
    }

    fn visit_expr_binary(&mut self, expr: &'ast syn::ExprBinary) {
        let left = self.lines.range(expr.left.span());
        let right = self.lines.range(expr.right.span());
        let op = self.lines.range(expr.op.span());
        self.push((left.0, right.1), Kind::Binary { left, op, right });
        syn::visit::visit_expr_binary(self, expr);
    }

    fn visit_expr_unary(&mut self, expr: &'ast syn::ExprUnary) {
        let operand = self.lines.range(expr.expr.span());
        let op = self.lines.range(expr.op.span());
        self.push((op.0, operand.1), Kind::Unary { op, operand });
        syn::visit::visit_expr_unary(self, expr);
    }

    fn visit_arm(&mut self, arm: &'ast syn::Arm) {
        let pattern = self.lines.range(arm.pat.span());
        let body = self.lines.range(arm.body.span());
        let guard = arm.guard.as_ref().map(|(_, g)| self.lines.range(g.span()));
        self.push(
            (pattern.0, body.1),
            Kind::Arm {
                pattern_end: pattern.1,
                guard,
            },
        );
        if let Some(range) = guard {
            self.push(range, Kind::Guard);
        }
        syn::visit::visit_arm(self, arm);
    }
}

/// Rewrites `text` (the file `mutants` name) with every mutant whose id is not in
/// `excluded`. `Err` when the file does not parse.
pub fn rewrite(text: &str, mutants: &[(u32, &Mutant)], excluded: &HashSet<u32>) -> Result<Rewrite, String> {
    let file = syn::parse_file(text).map_err(|e| format!("does not parse: {e}"))?;
    let lines = Lines::new(text);
    let mut finder = Finder {
        lines: &lines,
        constant: 0,
        sites: Vec::new(),
    };
    finder.visit_file(&file);
    let mut sites = finder.sites;
    let mut out = Rewrite::default();

    for &(id, mutant) in mutants {
        if excluded.contains(&id) {
            continue;
        }
        let Some(start) = lines.compiler_position(mutant.span.start.line, mutant.span.start.column) else {
            out.left_out.push((id, "its span is outside the file".into()));
            continue;
        };
        let end = lines
            .compiler_position(mutant.span.end.line, mutant.span.end.column)
            .unwrap_or(text.len());
        let found = sites.iter().position(|site| match (&site.kind, mutant.genre.as_str()) {
            (Kind::Binary { op, .. }, "BinaryOperator") | (Kind::Unary { op, .. }, "UnaryOperator") => {
                *op == (start, end)
            }
            (Kind::Guard, "MatchArmGuard") => site.range == (start, end),
            (Kind::Arm { .. }, "MatchArm") => site.range.0 == start,
            _ => false,
        });
        let found = found.or_else(|| {
            // A function's value: the innermost block around the span.
            (mutant.genre == "FnValue")
                .then(|| {
                    sites
                        .iter()
                        .enumerate()
                        .filter(|(_, s)| matches!(s.kind, Kind::Body) && s.range.0 < start && end <= s.range.1)
                        .min_by_key(|(_, s)| s.range.1 - s.range.0)
                        .map(|(i, _)| i)
                })
                .flatten()
        });
        match found {
            None => out.left_out.push((id, format!("no site for a {} here", mutant.genre))),
            Some(i) if sites[i].constant => out.left_out.push((id, "in a constant context".into())),
            Some(i) => {
                sites[i].mutants.push((id, mutant.replacement.clone()));
                out.placed.push(id);
            }
        }
    }

    sites.retain(|s| !s.mutants.is_empty());
    // Outer before inner: by start, then the longer, then the higher rank.
    sites.sort_by(|a, b| {
        a.range
            .0
            .cmp(&b.range.0)
            .then(b.range.1.cmp(&a.range.1))
            .then(b.rank().cmp(&a.rank()))
    });
    out.site_mutants = sites
        .iter()
        .map(|s| s.mutants.iter().map(|(id, _)| *id).collect())
        .collect();
    let mut renderer = Renderer {
        text,
        sites: &sites,
        out: String::with_capacity(text.len() * 2),
        marks: Vec::new(),
    };
    renderer.range((0, text.len()), u8::MAX);
    out.text = renderer.out;
    out.marks = renderer.marks;
    Ok(out)
}

struct Renderer<'a> {
    text: &'a str,
    sites: &'a [Site],
    out: String,
    marks: Vec<(Range, Owner)>,
}

impl Renderer<'_> {
    /// Writes `text[range]` with the sites inside it rewritten; a site over exactly this
    /// range is inside only if its rank is below `below` (the site being written).
    fn range(&mut self, range: Range, below: u8) {
        let mut at = range.0;
        let mut outer: Option<&Site> = None;
        for (index, site) in self.sites.iter().enumerate() {
            let inside =
                range.0 <= site.range.0 && site.range.1 <= range.1 && (site.range != range || site.rank() < below);
            if !inside || site.range.0 < at {
                continue;
            }
            if let Some(o) = outer {
                if o.range.0 <= site.range.0 && site.range.1 <= o.range.1 {
                    continue;
                }
            }
            self.out.push_str(&self.text[at..site.range.0]);
            self.site(index);
            at = site.range.1;
            outer = Some(site);
        }
        self.out.push_str(&self.text[at..range.1]);
    }

    fn switch(&mut self, id: u32) {
        self.out.push_str(&format!("if {SWITCH}({id}) {{ "));
    }

    fn site(&mut self, index: usize) {
        let site = &self.sites[index];
        let start = self.out.len();
        let (a, b) = site.range;
        match &site.kind {
            Kind::Binary { left, op, right } => {
                self.out.push('(');
                for (id, replacement) in &site.mutants {
                    let branch = self.out.len();
                    self.switch(*id);
                    self.range(*left, u8::MAX);
                    self.out.push_str(&self.text[left.1..op.0]);
                    self.out.push_str(replacement);
                    self.out.push_str(&self.text[op.1..right.0]);
                    self.range(*right, u8::MAX);
                    self.out.push_str(" } else ");
                    self.marks.push(((branch, self.out.len()), Owner::Mutant(*id)));
                }
                self.out.push_str("{ ");
                self.range(site.range, site.rank());
                self.out.push_str(" })");
            }
            Kind::Unary { op, operand } => {
                self.out.push('(');
                for (id, replacement) in &site.mutants {
                    let branch = self.out.len();
                    self.switch(*id);
                    self.out.push_str(replacement);
                    self.out.push_str(&self.text[op.1..operand.0]);
                    self.range(*operand, u8::MAX);
                    self.out.push_str(" } else ");
                    self.marks.push(((branch, self.out.len()), Owner::Mutant(*id)));
                }
                self.out.push_str("{ ");
                self.range(site.range, site.rank());
                self.out.push_str(" })");
            }
            Kind::Guard => {
                self.out.push('(');
                for (id, replacement) in &site.mutants {
                    let branch = self.out.len();
                    self.switch(*id);
                    self.out.push_str(replacement);
                    self.out.push_str(" } else ");
                    self.marks.push(((branch, self.out.len()), Owner::Mutant(*id)));
                }
                self.out.push_str("{ ");
                self.range(site.range, site.rank());
                self.out.push_str(" })");
            }
            Kind::Arm { pattern_end, guard } => {
                self.range((a, *pattern_end), u8::MAX);
                let mut deleted = String::new();
                for (id, _) in &site.mutants {
                    deleted.push_str(&format!("!{SWITCH}({id}) && "));
                }
                let mark = |r: &mut Self, from: usize| {
                    // Blamed on the arm's first mutant: an arm has one deletion.
                    r.marks.push(((from, r.out.len()), Owner::Mutant(site.mutants[0].0)));
                };
                match guard {
                    None => {
                        let from = self.out.len();
                        self.out.push_str(&format!(" if {}true", deleted));
                        mark(self, from);
                        self.range((*pattern_end, b), u8::MAX);
                    }
                    Some(g) => {
                        self.out.push_str(&self.text[*pattern_end..g.0]);
                        let from = self.out.len();
                        self.out.push_str(&deleted);
                        self.out.push('(');
                        mark(self, from);
                        self.range(*g, site.rank());
                        self.out.push(')');
                        self.range((g.1, b), u8::MAX);
                    }
                }
            }
            Kind::Body => {
                self.out.push_str(&self.text[a..a + 1]);
                for (id, replacement) in &site.mutants {
                    let branch = self.out.len();
                    self.out.push(' ');
                    self.switch(*id);
                    self.out.push_str(&format!("return {replacement}; }}"));
                    self.marks.push(((branch, self.out.len()), Owner::Mutant(*id)));
                }
                self.range((a + 1, b - 1), u8::MAX);
                self.out.push_str(&self.text[b - 1..b]);
            }
        }
        self.marks.push(((start, self.out.len()), Owner::Site(index)));
    }
}

/// Byte offset of a compiler's line and column (both from 1, the column in characters)
/// in `text`.
pub fn compiler_offset(text: &str, line: usize, column: usize) -> Option<usize> {
    Lines::new(text).compiler_position(line, column)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn mutant(genre: &str, line: usize, start: usize, end_line: usize, end: usize, replacement: &str) -> Mutant {
        Mutant {
            file: "f.rs".into(),
            genre: genre.into(),
            name: format!("f.rs:{line}:{start}: {genre}"),
            replacement: replacement.into(),
            span: Span {
                start: Position { line, column: start },
                end: Position {
                    line: end_line,
                    column: end,
                },
            },
        }
    }

    fn run(text: &str, mutants: &[Mutant]) -> Rewrite {
        let numbered: Vec<(u32, &Mutant)> = mutants.iter().enumerate().map(|(i, m)| (i as u32 + 1, m)).collect();
        rewrite(text, &numbered, &HashSet::new()).unwrap()
    }

    #[test]
    fn binary_operator_becomes_a_branch_and_keeps_the_original() {
        let text = "fn f(a: u32, b: u32) -> bool {\n    a + 1 > b\n}\n";
        let r = run(text, &[mutant("BinaryOperator", 2, 11, 2, 12, ">=")]);
        assert_eq!(r.placed, vec![1]);
        assert_eq!(
            r.text,
            "fn f(a: u32, b: u32) -> bool {\n    (if crate::__twinloop_mutant(1) { a + 1 >= b } else { a + 1 > b })\n}\n"
        );
    }

    #[test]
    fn nested_mutants_are_written_in_both_branches_of_the_outer_one() {
        let text = "fn f(a: u32, b: u32) -> bool {\n    a + 1 > b\n}\n";
        let r = run(
            text,
            &[
                mutant("BinaryOperator", 2, 11, 2, 12, "<"),
                mutant("BinaryOperator", 2, 7, 2, 8, "-"),
            ],
        );
        let inner = "(if crate::__twinloop_mutant(2) { a - 1 } else { a + 1 })";
        assert_eq!(
            r.text,
            format!(
                "fn f(a: u32, b: u32) -> bool {{\n    (if crate::__twinloop_mutant(1) {{ {inner} < b }} else {{ {inner} > b }})\n}}\n"
            )
        );
    }

    #[test]
    fn function_value_returns_early_and_constant_contexts_are_left_out() {
        let text = "const N: usize = 2 + 3;\nfn g() -> u32 {\n    let x = 1;\n    x * 2\n}\n";
        let r = run(
            text,
            &[
                mutant("BinaryOperator", 1, 20, 1, 21, "-"),
                mutant("FnValue", 3, 5, 4, 10, "0"),
            ],
        );
        assert_eq!(r.placed, vec![2]);
        assert_eq!(r.left_out.len(), 1);
        assert!(r.left_out[0].1.contains("constant"), "{:?}", r.left_out);
        assert!(
            r.text
                .contains("fn g() -> u32 { if crate::__twinloop_mutant(2) { return 0; }\n    let x = 1;"),
            "{}",
            r.text
        );
    }

    #[test]
    fn guard_and_arm_deletion_and_unary() {
        let text = "fn h(v: Option<u32>, t: bool) -> u32 {\n    match v {\n        Some(x) if x > 3 => 1,\n        None => 2,\n        _ => if !t { 3 } else { 4 },\n    }\n}\n";
        let r = run(
            text,
            &[
                mutant("MatchArmGuard", 3, 20, 3, 25, "false"),
                mutant("MatchArm", 4, 9, 4, 18, ""),
                mutant("UnaryOperator", 5, 17, 5, 18, ""),
            ],
        );
        assert_eq!(r.placed, vec![1, 2, 3]);
        assert!(
            r.text
                .contains("Some(x) if (if crate::__twinloop_mutant(1) { false } else { x > 3 }) => 1,"),
            "{}",
            r.text
        );
        assert!(
            r.text.contains("None if !crate::__twinloop_mutant(2) && true => 2,"),
            "{}",
            r.text
        );
        assert!(
            r.text
                .contains("if (if crate::__twinloop_mutant(3) { t } else { !t }) { 3 }"),
            "{}",
            r.text
        );
        syn::parse_file(&r.text).expect("the rewritten file parses");
    }

    /// A mutant at every site the finder sees in `text`, each keeping the original (an
    /// operator replaced by itself, a guard by itself).
    fn everywhere(text: &str) -> Vec<Mutant> {
        let lines = Lines::new(text);
        let mut finder = Finder {
            lines: &lines,
            constant: 0,
            sites: Vec::new(),
        };
        finder.visit_file(&syn::parse_file(text).unwrap());
        let position = |offset: usize| {
            let line = lines.starts.partition_point(|s| *s <= offset);
            let column = text[lines.starts[line - 1]..offset].chars().count() + 1;
            Position { line, column }
        };
        let span = |(a, b): Range| Span {
            start: position(a),
            end: position(b),
        };
        finder
            .sites
            .iter()
            .filter(|site| !site.constant)
            .map(|site| {
                let (genre, span, replacement) = match &site.kind {
                    Kind::Binary { op, .. } => ("BinaryOperator", span(*op), text[op.0..op.1].to_owned()),
                    Kind::Unary { op, .. } => ("UnaryOperator", span(*op), text[op.0..op.1].to_owned()),
                    Kind::Guard => (
                        "MatchArmGuard",
                        span(site.range),
                        text[site.range.0..site.range.1].to_owned(),
                    ),
                    Kind::Arm { .. } => ("MatchArm", span(site.range), String::new()),
                    Kind::Body => (
                        "FnValue",
                        span((site.range.0 + 1, site.range.1 - 1)),
                        "Default::default()".to_owned(),
                    ),
                };
                Mutant {
                    file: "f.rs".into(),
                    genre: genre.into(),
                    name: String::new(),
                    replacement,
                    span,
                }
            })
            .collect()
    }

    /// Every site of the core's real files, rewritten at once, still parses, and every
    /// site's mutant is placed: the rewrite's splicing holds on the code it is for.
    #[test]
    fn the_cores_files_rewritten_at_every_site_still_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../runtime/src");
        let mut files = vec![dir.join("wire.rs")];
        for entry in std::fs::read_dir(dir.join("node")).unwrap() {
            files.push(entry.unwrap().path());
        }
        let mut placed = 0;
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            let mutants = everywhere(&text);
            let r = run(&text, &mutants);
            let rejected: Vec<_> = r
                .left_out
                .iter()
                .map(|(id, why)| (&mutants[*id as usize - 1].genre, why))
                .collect();
            assert!(rejected.is_empty(), "{}: {rejected:?}", file.display());
            assert_eq!(r.placed.len(), mutants.len());
            if let Err(e) = syn::parse_file(&r.text) {
                let at = e.span().start();
                panic!(
                    "{} rewritten does not parse at {}:{}: {e}",
                    file.display(),
                    at.line,
                    at.column
                );
            }
            placed += r.placed.len();
        }
        assert!(placed > 2000, "{placed} sites");
    }

    #[test]
    fn an_error_in_a_branch_is_blamed_on_its_mutant() {
        let text = "fn f(a: u32, b: u32) -> bool {\n    a + 1 > b\n}\n";
        let r = run(text, &[mutant("BinaryOperator", 2, 11, 2, 12, ">=")]);
        let at = r.text.find(">=").unwrap();
        assert_eq!(r.blame(at), vec![1]);
        let original = r.text.rfind('>').unwrap();
        assert_eq!(
            r.blame(original),
            vec![1],
            "the site's original branch: all its mutants"
        );
        assert!(r.blame(0).is_empty());
    }
}

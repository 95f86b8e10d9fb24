//! Printing the tour: headings, wrapped paragraphs and tables that read well on a terminal and
//! in a log (ANSI styles only on a terminal, and never with `NO_COLOR` set).

use std::fmt;
use std::io::IsTerminal;

/// Where the tour prints, and whether it may use ANSI styles.
#[derive(Debug, Clone, Copy)]
pub struct Out {
    styled: bool,
}

/// The width paragraphs are wrapped to.
const WIDTH: usize = 96;

impl Out {
    /// Styles only when stdout is a terminal and `NO_COLOR` is unset.
    pub fn detect() -> Out {
        Out {
            styled: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        }
    }

    /// Plain text, whatever stdout is.
    pub fn plain() -> Out {
        Out { styled: false }
    }

    fn bold(&self, text: &str) -> String {
        if self.styled {
            format!("\x1b[1m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn dim(&self, text: &str) -> String {
        if self.styled {
            format!("\x1b[2m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    /// A section heading: `== 1. Timeouts: ... ==`, with a blank line before it.
    pub fn heading(&self, text: &str) {
        let rule = "=".repeat(WIDTH.saturating_sub(text.chars().count() + 4).max(2));
        println!("\n{}", self.bold(&format!("== {text} {rule}")));
    }

    /// A paragraph, wrapped.
    pub fn para(&self, text: &str) {
        println!("{}", wrap(text, WIDTH));
    }

    /// A short note in a quieter style, wrapped.
    pub fn note(&self, text: &str) {
        for line in wrap(text, WIDTH).lines() {
            println!("{}", self.dim(line));
        }
    }

    /// A table, indented by two spaces, its header in bold.
    pub fn table(&self, table: &Table) {
        let text = table.to_string();
        let mut lines = text.lines();
        if let Some(header) = lines.next() {
            println!("  {}", self.bold(header));
        }
        for line in lines {
            println!("  {line}");
        }
    }
}

/// Wraps `text` at `width` columns, keeping its line breaks.
pub fn wrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    for (i, paragraph) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let mut column = 0;
        for word in paragraph.split_whitespace() {
            let len = word.chars().count();
            if column > 0 && column + 1 + len > width {
                out.push('\n');
                column = 0;
            } else if column > 0 {
                out.push(' ');
                column += 1;
            }
            out.push_str(word);
            column += len;
        }
    }
    out
}

/// A plain-text table: the first column left-aligned, the others right-aligned.
#[derive(Debug, Clone, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    left: usize,
}

impl Table {
    /// A table with these column titles.
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Table {
        Table {
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
            left: 1,
        }
    }

    /// Left-aligns the first `n` columns (1 by default).
    pub fn left_columns(mut self, n: usize) -> Table {
        self.left = n;
        self
    }

    /// Adds a row.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    /// The rows so far.
    pub fn rows(&self) -> &[Vec<String>] {
        &self.rows
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let columns = self
            .rows
            .iter()
            .map(Vec::len)
            .chain([self.header.len()])
            .max()
            .unwrap_or(0);
        let width = |c: usize| {
            self.rows
                .iter()
                .chain([&self.header])
                .filter_map(|r| r.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..columns).map(width).collect();
        for row in [&self.header].into_iter().chain(&self.rows) {
            let mut line = String::new();
            for (c, w) in widths.iter().enumerate() {
                let cell = row.get(c).map_or("", String::as_str);
                if c > 0 {
                    line.push_str("  ");
                }
                if c < self.left {
                    line.push_str(&format!("{cell:<w$}"));
                } else {
                    line.push_str(&format!("{cell:>w$}"));
                }
            }
            writeln!(f, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let mut t = Table::new(["what", "ms"]);
        t.row(["a", "1"]);
        t.row(["longer", "1000"]);
        assert_eq!(t.to_string(), "what      ms\na          1\nlonger  1000\n");
    }

    #[test]
    fn paragraphs_wrap_at_the_width() {
        let text = wrap("aa bb cc dd\nee", 5);
        assert_eq!(text, "aa bb\ncc dd\nee");
    }

    #[test]
    fn plain_output_has_no_escapes() {
        let out = Out::plain();
        assert_eq!(out.bold("x"), "x");
        assert_eq!(out.dim("x"), "x");
    }
}

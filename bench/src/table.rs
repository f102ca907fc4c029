//! Aligned plain-text and Markdown tables for result summaries.
//!
//! The same rows go to the terminal and to `latest.md`, so they are built
//! once as strings and rendered twice.

/// A table of pre-formatted cells; numeric-looking cells align right.
#[derive(Clone, Debug, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Table {
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        assert_eq!(cells.len(), self.header.len(), "row width");
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    fn widths(&self) -> Vec<usize> {
        (0..self.header.len())
            .map(|i| {
                self.rows
                    .iter()
                    .map(|r| r[i].chars().count())
                    .chain([self.header[i].chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect()
    }

    fn numeric(&self, col: usize) -> bool {
        self.rows
            .iter()
            .all(|r| r[col] == "-" || r[col].replace(',', "").parse::<f64>().is_ok())
    }

    /// Space-aligned text for a terminal.
    pub fn text(&self) -> String {
        let w = self.widths();
        let fmt = |cells: &[String]| {
            cells
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    if self.numeric(i) {
                        format!("{c:>width$}", width = w[i])
                    } else {
                        format!("{c:<width$}", width = w[i])
                    }
                })
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        };
        let mut out = fmt(&self.header) + "\n";
        out += &(w
            .iter()
            .map(|n| "-".repeat(*n))
            .collect::<Vec<_>>()
            .join("  ")
            + "\n");
        for r in &self.rows {
            out += &(fmt(r) + "\n");
        }
        out
    }

    /// GitHub-flavoured Markdown.
    pub fn markdown(&self) -> String {
        let line = |cells: &[String]| format!("| {} |\n", cells.join(" | "));
        let mut out = line(&self.header);
        let sep: Vec<String> = (0..self.header.len())
            .map(|i| {
                if self.numeric(i) {
                    "---:".into()
                } else {
                    "---".into()
                }
            })
            .collect();
        out += &line(&sep);
        for r in &self.rows {
            out += &line(r);
        }
        out
    }
}

/// Formats an optional number with thousands separators / fixed decimals.
pub fn num(v: Option<f64>, decimals: usize) -> String {
    match v {
        None => "-".into(),
        Some(v) if decimals == 0 => group(v.round() as i128),
        Some(v) => format!("{v:.decimals$}"),
    }
}

fn group(v: i128) -> String {
    let s = v.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0 { format!("-{out}") } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_and_groups() {
        let mut t = Table::new(&["name", "pps"]);
        t.row(vec!["a".into(), num(Some(1234567.0), 0)]);
        t.row(vec!["longer".into(), num(None, 0)]);
        let text = t.text();
        assert!(text.contains("a       1,234,567"), "{text}");
        assert!(t.markdown().contains("| ---: |") || t.markdown().contains("---:"));
        assert_eq!(num(Some(2.345), 2), "2.35");
    }
}

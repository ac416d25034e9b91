//! Plain aligned columns for terminal output.

use std::fmt::Write as _;

/// A row formatter for fixed column widths; longer cells are cut with `…`.
#[derive(Debug, Clone)]
pub struct Table {
    widths: Vec<usize>,
}

impl Table {
    pub fn new(widths: &[usize]) -> Self {
        Self {
            widths: widths.to_vec(),
        }
    }

    /// One line (no newline) with each cell padded or cut to its column's width.
    pub fn row<S: AsRef<str>>(&self, cells: &[S]) -> String {
        let mut line = String::new();
        for (index, (cell, width)) in cells.iter().zip(&self.widths).enumerate() {
            if index > 0 {
                line.push_str("  ");
            }
            let cell = cell.as_ref();
            let shown = if cell.chars().count() > *width {
                let mut cut: String = cell.chars().take(width.saturating_sub(1)).collect();
                cut.push('…');
                cut
            } else {
                cell.to_owned()
            };
            let _ = write!(line, "{shown:<width$}");
        }
        line.trim_end().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_padded_or_cut_to_their_width() {
        let table = Table::new(&[4, 6]);
        assert_eq!(table.row(&["ab", "cdefgh"]), "ab    cdefgh");
        assert_eq!(table.row(&["abcdef", "x"]), "abc…  x");
    }
}

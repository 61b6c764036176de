//! The one table style of every command that prints rows for people (status,
//! insights, the seeder's logins).

use comfy_table::{CellAlignment, Table, presets};

/// A table with `header`, in Markdown's ASCII style. Not box-drawing characters:
/// they are East Asian "ambiguous" width, drawn double-wide by terminals set up for
/// Japanese, which would break the alignment that comfy-table computes from each
/// cell's display width (so `田中 太郎` takes four columns, not two).
pub fn text_table<I, S>(header: I) -> Table
where
    I: IntoIterator<Item = S>,
    S: Into<comfy_table::Cell>,
{
    let mut table = Table::new();
    table.load_style(presets::ASCII_MARKDOWN);
    table.set_header(header);
    table
}

/// Aligns the given columns right, as numbers read best.
pub fn align_right(table: &mut Table, columns: &[usize]) {
    for &index in columns {
        if let Some(column) = table.column_mut(index) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
}

/// Collapses a cell's whitespace (SQL text spans lines) and cuts it to `max_chars`
/// characters, so one row stays one line.
pub fn one_line(text: &str, max_chars: usize) -> String {
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.chars().count() <= max_chars {
        return collapsed;
    }
    let mut cut: String = collapsed
        .chars()
        .take(max_chars.saturating_sub(3))
        .collect();
    cut.push_str("...");
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_collapses_and_cuts() {
        assert_eq!(one_line("SELECT *\n  FROM t", 80), "SELECT * FROM t");
        assert_eq!(one_line("abcdefghij", 6), "abc...");
        assert_eq!(one_line("日本語のテキスト", 5), "日本...");
    }
}

//! docs/benchmarks-operator.md is written by several runs (the operator
//! benchmark's figures, the soak): each owns one section between
//! `<!-- begin NAME -->` and `<!-- end NAME -->` and replaces only that one,
//! so the other sections stay as their last run wrote them.

use std::path::Path;

/// `document` with section `name` replaced by `text` (appended when absent).
pub fn with_section(document: &str, name: &str, text: &str) -> String {
    let begin = format!("<!-- begin {name} -->");
    let end = format!("<!-- end {name} -->");
    let block = format!("{begin}\n{}\n{end}", text.trim_end());
    match (document.find(&begin), document.find(&end)) {
        (Some(start), Some(stop)) if stop > start => format!(
            "{}{block}{}",
            &document[..start],
            &document[stop + end.len()..]
        ),
        _ => {
            let mut out = document.trim_end().to_string();
            if !out.is_empty() {
                out.push_str("\n\n");
            }
            out.push_str(&block);
            out.push('\n');
            out
        }
    }
}

/// Replaces section `name` of the file at `path` (created when missing).
pub fn write_section(path: &Path, name: &str, text: &str) {
    let document = std::fs::read_to_string(path).unwrap_or_default();
    std::fs::write(path, with_section(&document, name, text))
        .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

#[cfg(test)]
mod tests {

    #[test]
    fn only_the_named_section_changes() {
        let doc = "# T\n\nintro\n\n<!-- begin a -->\nold a\n<!-- end a -->\n\n<!-- begin b -->\nold b\n<!-- end b -->\ntail\n";
        let out = super::with_section(doc, "a", "new a\n");
        assert_eq!(
            out,
            "# T\n\nintro\n\n<!-- begin a -->\nnew a\n<!-- end a -->\n\n<!-- begin b -->\nold b\n<!-- end b -->\ntail\n"
        );
        let added = super::with_section("# T\n", "c", "c text");
        assert_eq!(added, "# T\n\n<!-- begin c -->\nc text\n<!-- end c -->\n");
        assert_eq!(super::with_section(&out, "a", "new a"), out, "idempotent");
    }
}

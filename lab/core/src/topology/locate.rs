//! Finds where a key or value sits in a YAML file by indentation, so that errors found after
//! parsing (an unknown service in depends_on, a missing config file) still point at a line.

/// 1-based line and column.
pub type Pos = (usize, usize);

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

fn is_key(line: &str, key: &str) -> bool {
    let t = line.trim_start().trim_start_matches("- ");
    let t = t.trim_start_matches(['"', '\'']);
    t.strip_prefix(key)
        .map(|r| r.trim_start_matches(['"', '\'']).starts_with(':'))
        .unwrap_or(false)
}

/// Line range (0-based, end exclusive) of the block of `path`, and the key's position.
fn block(lines: &[&str], path: &[&str]) -> Option<(usize, usize, Pos)> {
    let (mut lo, mut hi) = (0usize, lines.len());
    let mut parent_indent: Option<usize> = None;
    let mut pos = (1, 1);
    for key in path {
        let mut found = None;
        for (i, line) in lines.iter().enumerate().take(hi).skip(lo) {
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let ind = indent(line);
            if parent_indent.is_some_and(|p| ind <= p) {
                continue;
            }
            if is_key(line, key) {
                found = Some((i, ind));
                break;
            }
        }
        let (i, ind) = found?;
        pos = (i + 1, ind + 1);
        let mut end = i + 1;
        while end < hi {
            let l = lines[end];
            if !l.trim().is_empty() && !l.trim_start().starts_with('#') && indent(l) <= ind {
                break;
            }
            end += 1;
        }
        lo = i + 1;
        hi = end;
        parent_indent = Some(ind);
    }
    Some((lo, hi, pos))
}

/// Position of the key at `path` (e.g. `["services", "redis-1", "image"]`).
pub fn key(text: &str, path: &[&str]) -> Option<Pos> {
    let lines: Vec<&str> = text.lines().collect();
    block(&lines, path).map(|(_, _, p)| p)
}

/// Position of the first occurrence of `needle` inside the block of `path`, falling back to
/// the key itself.
pub fn value_in(text: &str, path: &[&str], needle: &str) -> Option<Pos> {
    let lines: Vec<&str> = text.lines().collect();
    let (lo, hi, pos) = block(&lines, path)?;
    for (i, line) in lines.iter().enumerate().take(hi).skip(lo) {
        if let Some(c) = line.find(needle) {
            return Some((i + 1, c + 1));
        }
    }
    Some(pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "services:\n  a:\n    image: x\n    depends_on:\n      - b\n  b:\n    image: y\nx-lab:\n  nodes:\n    a: {role: master}\n";

    #[test]
    fn finds_nested_keys() {
        assert_eq!(key(T, &["services", "b", "image"]), Some((7, 5)));
        assert_eq!(key(T, &["x-lab", "nodes", "a"]), Some((10, 5)));
        assert_eq!(key(T, &["services", "c"]), None);
    }

    #[test]
    fn finds_values_in_a_block() {
        assert_eq!(
            value_in(T, &["services", "a", "depends_on"], "b"),
            Some((5, 9))
        );
    }
}

//! Compose-style `${VAR}` interpolation, applied line by line so that line numbers in the
//! interpolated text are those of the file (errors keep their file:line:column).

use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterpolationError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Replaces `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?message}` and
/// `${VAR?message}`; `$$` stands for a literal `$`. Lines starting with `#` are left alone.
pub fn interpolate(
    text: &str,
    vars: &HashMap<String, String>,
) -> Result<String, InterpolationError> {
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if line.trim_start().starts_with('#') {
            out.push_str(line);
            continue;
        }
        out.push_str(&interpolate_line(line, vars).map_err(|(col, message)| {
            InterpolationError {
                line: i + 1,
                column: col + 1,
                message,
            }
        })?);
    }
    Ok(out)
}

fn interpolate_line(line: &str, vars: &HashMap<String, String>) -> Result<String, (usize, String)> {
    let bytes = line.as_bytes();
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            let ch = line[i..].chars().next().unwrap_or(' ');
            out.push(ch);
            i += ch.len_utf8();
            continue;
        }
        let start = i;
        match bytes.get(i + 1) {
            Some(b'$') => {
                out.push('$');
                i += 2;
            }
            Some(b'{') => {
                let close = line[i..]
                    .find('}')
                    .map(|p| p + i)
                    .ok_or((start, "unterminated ${ in variable reference".to_string()))?;
                let body = &line[i + 2..close];
                out.push_str(&expand(body, vars).map_err(|m| (start, m))?);
                i = close + 1;
            }
            Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
                let mut j = i + 1;
                while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
                    j += 1;
                }
                let name = &line[i + 1..j];
                out.push_str(vars.get(name).map(String::as_str).unwrap_or(""));
                i = j;
            }
            _ => {
                out.push('$');
                i += 1;
            }
        }
    }
    Ok(out)
}

fn expand(body: &str, vars: &HashMap<String, String>) -> Result<String, String> {
    let name_end = body
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(body.len());
    let name = &body[..name_end];
    if name.is_empty() {
        return Err(format!("invalid variable reference ${{{body}}}"));
    }
    let rest = &body[name_end..];
    let value = vars.get(name);
    let set_non_empty = value.is_some_and(|v| !v.is_empty());
    if rest.is_empty() {
        return Ok(value.cloned().unwrap_or_default());
    }
    if let Some(default) = rest.strip_prefix(":-") {
        return Ok(if set_non_empty {
            value.cloned().unwrap_or_default()
        } else {
            default.to_string()
        });
    }
    if let Some(default) = rest.strip_prefix('-') {
        return Ok(value.cloned().unwrap_or_else(|| default.to_string()));
    }
    if let Some(msg) = rest.strip_prefix(":?") {
        return if set_non_empty {
            Ok(value.cloned().unwrap_or_default())
        } else {
            Err(format!("variable {name} must be set: {msg}"))
        };
    }
    if let Some(msg) = rest.strip_prefix('?') {
        return value
            .cloned()
            .ok_or_else(|| format!("variable {name} must be set: {msg}"));
    }
    Err(format!("invalid variable reference ${{{body}}}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_and_values() {
        let v = vars(&[("A", "1"), ("E", "")]);
        let got =
            interpolate("a: ${A:-9} b: ${B:-9} e: ${E:-d} e2: ${E-d} $$x $A\n", &v).expect("ok");
        assert_eq!(got, "a: 1 b: 9 e: d e2:  $x 1\n");
    }

    #[test]
    fn required_variable_error_has_position() {
        let e = interpolate("x: 1\n  y: ${NEED:?set it}\n", &HashMap::new()).expect_err("err");
        assert_eq!((e.line, e.column), (2, 6));
        assert!(e.message.contains("NEED"));
    }

    #[test]
    fn unterminated_is_an_error() {
        let e = interpolate("a: ${X\n", &HashMap::new()).expect_err("err");
        assert_eq!(e.line, 1);
    }

    #[test]
    fn comments_are_untouched_and_lines_are_kept() {
        let t = "# ${NOPE:?x}\na: ${A}\n";
        let got = interpolate(t, &vars(&[("A", "z")])).expect("ok");
        assert_eq!(got.lines().count(), t.lines().count());
        assert!(got.starts_with("# ${NOPE:?x}"));
    }
}

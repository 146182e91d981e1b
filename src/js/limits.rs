//! Guards that run before boa sees a source text.
//!
//! boa's parser and bytecode compiler recurse once per nesting level, using
//! roughly 25–30 KB of native stack each, and a native stack overflow aborts
//! the whole process. So the source is scanned first and rejected when its
//! nesting could get anywhere near the worker's stack.

/// Estimates how deeply a source nests: bracket depth plus, within the
/// innermost bracket, chains of right-recursive constructs (`!`, `~`, `?`,
/// assignment `=`, arrows `=>`, and unary `+`/`-`), which the parser also
/// descends into one level at a time. Strings, template literals and
/// comments are skipped. The estimate is deliberately pessimistic.
pub fn nesting_depth(source: &str) -> usize {
    let bytes = source.as_bytes();
    let mut depth: usize = 0;
    // Per open bracket: how many chained operators its current statement holds.
    let mut chains: Vec<usize> = vec![0];
    let mut max = 0;
    let mut i = 0;
    // Whether the previous significant byte ends an operand; decides whether
    // `+`/`-` are unary and whether `/` starts a regular expression.
    let mut after_operand = false;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'"' | b'\'' | b'`' => {
                i = skip_quoted(bytes, i);
                after_operand = true;
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
                continue;
            }
            b'/' if !after_operand => {
                i = skip_regex(bytes, i);
                after_operand = true;
                continue;
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                chains.push(0);
                after_operand = false;
            }
            b')' | b']' | b'}' => {
                depth = depth.saturating_sub(1);
                if chains.len() > 1 {
                    chains.pop();
                }
                after_operand = true;
            }
            b';' | b',' => {
                if let Some(c) = chains.last_mut() {
                    *c = 0;
                }
                after_operand = false;
            }
            b'!' if bytes.get(i + 1) == Some(&b'=') => after_operand = false,
            b'!' | b'~' | b'?' => {
                bump(&mut chains);
                after_operand = false;
            }
            b'=' => {
                let prev = if i > 0 { bytes[i - 1] } else { b' ' };
                let next = bytes.get(i + 1).copied().unwrap_or(b' ');
                // Count `=` and `=>` once; skip comparison operators.
                if next != b'=' && !matches!(prev, b'=' | b'!' | b'<' | b'>') {
                    bump(&mut chains);
                }
                after_operand = false;
            }
            b'+' | b'-' => {
                if !after_operand {
                    bump(&mut chains);
                }
                after_operand = false;
            }
            b' ' | b'\t' | b'\n' | b'\r' => {}
            _ => {
                after_operand = b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80;
            }
        }
        let here = depth + chains.last().copied().unwrap_or(0);
        max = max.max(here);
        i += 1;
    }
    max
}

fn bump(chains: &mut [usize]) {
    if let Some(c) = chains.last_mut() {
        *c += 1;
    }
}

/// Returns the index just after the closing quote (or the end of the text).
fn skip_quoted(bytes: &[u8], start: usize) -> usize {
    let quote = bytes[start];
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b if b == quote => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

fn skip_regex(bytes: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    let mut in_class = false;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'[' => {
                in_class = true;
                i += 1;
            }
            b']' => {
                in_class = false;
                i += 1;
            }
            b'/' if !in_class => return i + 1,
            b'\n' => return i,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// Native stack budgeted per nesting level (measured ~25–30 KB in boa 0.22,
/// doubled for safety).
const STACK_BYTES_PER_LEVEL: usize = 64 * 1024;

/// The deepest nesting accepted on a worker thread with `stack_size` bytes of
/// native stack, capped at `configured`.
pub fn max_nesting_for_stack(stack_size: usize, configured: usize) -> usize {
    configured.min(stack_size / STACK_BYTES_PER_LEVEL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_brackets_and_chains() {
        assert_eq!(nesting_depth("function(doc) { emit(doc._id, null); }"), 2);
        assert_eq!(
            nesting_depth(&format!("{}1{}", "(".repeat(500), ")".repeat(500))),
            500
        );
        assert!(nesting_depth(&format!("x = {}y", "!".repeat(300))) >= 300);
        assert!(nesting_depth(&format!("{}1", "- ".repeat(300))) >= 300);
        assert!(nesting_depth(&"a = ".repeat(300)) >= 300);
    }

    #[test]
    fn ignores_strings_comments_and_regexes() {
        let src = r#"function(doc) { var s = "((((((((((" + '[[[[[' + `{{{{`; // ((((((
            /* [[[[[[[[ */ var r = /\(((((/; emit(s, r.test(s) ? 1 : 0); }"#;
        assert!(nesting_depth(src) < 6, "{}", nesting_depth(src));
        assert_eq!(nesting_depth("a == b; a === b; a != b; a <= b; a >= b"), 0);
    }

    #[test]
    fn stack_budget() {
        assert_eq!(max_nesting_for_stack(256 << 20, 1000), 1000);
        assert_eq!(max_nesting_for_stack(2 << 20, 1000), 32);
    }
}

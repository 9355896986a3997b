//! The one HTML escaper, shared by every page and report the agent renders
//! (the status pages, the soak verdict's HTML report, the change-window
//! summary page). Pure: text in, text out; it depends on nothing.

use std::borrow::Cow;

/// `text` with the five HTML-significant characters (`<`, `>`, `&`, `"`,
/// `'`) escaped, safe in element content and in quoted attribute values;
/// everything else, non-ASCII included, passes through. Text that needs no
/// escaping is returned as it is, without a copy.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.contains(['<', '>', '&', '"', '\'']) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for ch in text.chars() {
        match ch {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_quotes_and_ampersands_and_passes_the_rest() {
        // Markup, both quotes and the ampersand, in content and attributes.
        assert_eq!(
            escape("<a href=\"x\" title='y'>Q&A</a>"),
            "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;Q&amp;A&lt;/a&gt;"
        );
        // An existing entity is escaped again: the text is shown, not decoded.
        assert_eq!(escape("&lt;"), "&amp;lt;");
        // Non-ASCII (accents, CJK, emoji, a bidi control) passes through.
        assert_eq!(
            escape("café <naïve> 東京 🚀 \u{202e}"),
            "café &lt;naïve&gt; 東京 🚀 \u{202e}"
        );
        // Plain text, and the empty string, come back borrowed.
        assert!(matches!(
            escape("plain ü text"),
            Cow::Borrowed("plain ü text")
        ));
        assert!(matches!(escape(""), Cow::Borrowed("")));
    }
}

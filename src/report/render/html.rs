//! Renders a [`Document`] as one self-contained HTML page.
//!
//! Styles are inline, each chart is an inline SVG drawn by plotters, and nothing is
//! loaded from anywhere else, so the page can be mailed, archived or opened offline.
//! Every piece of text from the document is HTML-escaped.

use std::fmt::Write as _;

use plotters::prelude::{IntoDrawingArea, SVGBackend};

use super::{Block, Chart, Document, chart};

/// The SVG chart's size in pixels and pixels per typographic point.
const CHART_SIZE: (u32, u32) = (1000, 420);
const CHART_SCALE: f64 = 1.5;

const CSS: &str = "\
:root{--ink:#1a1a1f;--muted:#5f5f6b;--rule:#c7c7cc;--zebra:#f6f7f9;--head:#e6e8ed}
body{margin:0;color:var(--ink);font:15px/1.45 system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif}
main{max-width:62rem;margin:0 auto;padding:2rem 1.5rem}
header{border-bottom:1px solid var(--rule);margin-bottom:1.25rem}
h1{font-size:1.6rem;margin:0 0 .2rem}
.subtitle{color:var(--muted);margin:0 0 .8rem}
h2{font-size:1.2rem;margin:1.5rem 0 .4rem}
dl.fields{display:grid;grid-template-columns:max-content 1fr;gap:.15rem 1.2rem;margin:.5rem 0 1rem}
dt{font-weight:600}dd{margin:0}
table{border-collapse:collapse;width:100%;font-size:.85rem;margin:.5rem 0 1.2rem}
th,td{text-align:left;vertical-align:top;padding:.25rem .45rem;border-bottom:1px solid var(--rule);overflow-wrap:anywhere;white-space:pre-line}
thead th{background:var(--head)}
tbody tr:nth-child(even){background:var(--zebra)}
figure.chart{margin:.8rem 0 1.2rem}
figure.chart svg{width:100%;height:auto;display:block}
.verdict{font-weight:600;padding:.45rem .7rem;margin:.6rem 0;border-left:4px solid}
.verdict .tag{display:inline-block;color:#fff;font-size:.75rem;padding:.05rem .4rem;margin-right:.6rem;border-radius:2px}
.verdict.pass{color:#17732f;background:#e6f5e8;border-color:#17732f}.verdict.pass .tag{background:#17732f}
.verdict.fail{color:#b81c1c;background:#fde8e8;border-color:#b81c1c}.verdict.fail .tag{background:#b81c1c}
.error{color:#b81c1c}
footer{border-top:1px solid var(--rule);margin-top:2rem;padding-top:.5rem;color:var(--muted);font-size:.8rem}
@page{size:A4;margin:18mm}
@media print{main{max-width:none;padding:0}.page-break{break-after:page}thead{display:table-header-group}tr,figure,.verdict{break-inside:avoid}}
";

/// Renders `doc` as a self-contained HTML page: inline CSS, charts as inline SVG, no
/// external references.
pub fn render_html(doc: &Document) -> String {
    let mut out = String::with_capacity(64 * 1024);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    out.push_str(&format!(
        "<title>{}</title>\n<style>\n{CSS}</style>\n",
        escape(&doc.title)
    ));
    out.push_str("</head>\n<body>\n<main>\n<header>\n");
    out.push_str(&format!("<h1>{}</h1>\n", escape(&doc.title)));
    if let Some(subtitle) = &doc.subtitle {
        out.push_str(&format!("<p class=\"subtitle\">{}</p>\n", escape(subtitle)));
    }
    out.push_str("</header>\n");
    for block in &doc.blocks {
        block_html(&mut out, block);
    }
    if !doc.footer.is_empty() {
        out.push_str(&format!("<footer>{}</footer>\n", escape(&doc.footer)));
    }
    out.push_str("</main>\n</body>\n</html>\n");
    out
}

fn block_html(out: &mut String, block: &Block) {
    // Writing to a String cannot fail.
    let _ = match block {
        Block::Heading(t) => writeln!(out, "<h2>{}</h2>", escape(t)),
        Block::Paragraph(t) => writeln!(out, "<p>{}</p>", escape(t).replace('\n', "<br>")),
        Block::Fields(pairs) => {
            out.push_str("<dl class=\"fields\">\n");
            for (label, value) in pairs {
                let _ = writeln!(out, "<dt>{}</dt><dd>{}</dd>", escape(label), escape(value));
            }
            writeln!(out, "</dl>")
        }
        Block::Table { headers, rows, widths } => {
            table_html(out, headers, rows, widths.as_deref());
            Ok(())
        }
        Block::Chart(c) => writeln!(out, "<figure class=\"chart\">\n{}</figure>", chart_svg(c)),
        Block::Verdict { ok, text } => {
            let (class, tag) = if *ok { ("pass", "PASS") } else { ("fail", "FAIL") };
            writeln!(
                out,
                "<p class=\"verdict {class}\"><span class=\"tag\">{tag}</span>{}</p>",
                escape(text)
            )
        }
        Block::PageBreak => writeln!(out, "<div class=\"page-break\"></div>"),
    };
}

fn table_html(out: &mut String, headers: &[String], rows: &[Vec<String>], widths: Option<&[f32]>) {
    let count = rows.iter().map(Vec::len).chain([headers.len()]).max().unwrap_or(0);
    if count == 0 {
        return;
    }
    out.push_str("<table>\n");
    if let Some(w) = widths.filter(|w| w.len() == count && w.iter().all(|v| v.is_finite() && *v > 0.0)) {
        let sum: f32 = w.iter().sum();
        out.push_str("<colgroup>");
        for v in w {
            let _ = write!(out, "<col style=\"width:{:.2}%\">", v / sum * 100.0);
        }
        out.push_str("</colgroup>\n");
    }
    if !headers.is_empty() {
        out.push_str("<thead><tr>");
        for i in 0..count {
            let _ = write!(out, "<th>{}</th>", escape(headers.get(i).map_or("", String::as_str)));
        }
        out.push_str("</tr></thead>\n");
    }
    out.push_str("<tbody>\n");
    for row in rows {
        out.push_str("<tr>");
        for i in 0..count {
            let _ = write!(out, "<td>{}</td>", escape(row.get(i).map_or("", String::as_str)));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
}

/// The chart as an inline SVG element, or a note saying why it could not be drawn.
fn chart_svg(c: &Chart) -> String {
    let mut svg = String::new();
    let drawn = {
        let root = SVGBackend::with_string(&mut svg, CHART_SIZE).into_drawing_area();
        chart::draw(&root, c, CHART_SCALE)
    };
    if let Err(message) = drawn {
        return format!(
            "<p class=\"error\">Chart {} could not be drawn: {}</p>\n",
            escape(&c.title),
            escape(&message)
        );
    }
    // Inline SVG in HTML needs no namespace declaration; dropping it leaves the page
    // without a single URL. The title makes the chart accessible.
    let svg = svg.replacen(" xmlns=\"http://www.w3.org/2000/svg\"", " role=\"img\"", 1);
    match svg.find('>') {
        Some(end) => format!("{}<title>{}</title>{}", &svg[..=end], escape(&c.title), &svg[end + 1..]),
        None => svg,
    }
}

/// `s` with the five HTML-significant characters escaped, safe in text and attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(blocks: Vec<Block>) -> Document {
        Document {
            title: "Audit <report> & \"more\"".into(),
            subtitle: Some("Site 'A'".into()),
            blocks,
            footer: "generated by cryowatch".into(),
        }
    }

    #[test]
    fn all_document_text_is_escaped() {
        let html = render_html(&doc(vec![
            Block::Heading("<h1>".into()),
            Block::Paragraph("a < b\nc".into()),
            Block::Fields(vec![("<Site>".into(), "x&y".into())]),
            Block::Table {
                headers: vec!["<th>".into()],
                rows: vec![vec!["<script>alert(1)</script>&\"".into()]],
                widths: None,
            },
            Block::Verdict {
                ok: true,
                text: "ok & <b>".into(),
            },
        ]));
        assert!(html.contains("<title>Audit &lt;report&gt; &amp; &quot;more&quot;</title>"));
        assert!(html.contains("Site &#39;A&#39;"));
        assert!(html.contains("<h2>&lt;h1&gt;</h2>"));
        assert!(html.contains("<p>a &lt; b<br>c</p>"));
        assert!(html.contains("<dt>&lt;Site&gt;</dt><dd>x&amp;y</dd>"));
        assert!(html.contains("<td>&lt;script&gt;alert(1)&lt;/script&gt;&amp;&quot;</td>"));
        assert!(html.contains("ok &amp; &lt;b&gt;"));
        assert!(!html.contains("<script>"));
        assert!(!html.contains("<b>"));
    }

    #[test]
    fn tables_pad_short_rows_and_honour_relative_widths() {
        let html = render_html(&doc(vec![Block::Table {
            headers: vec!["a".into(), "b".into()],
            rows: vec![vec!["1".into()]],
            widths: Some(vec![1.0, 3.0]),
        }]));
        assert!(html.contains("<col style=\"width:25.00%\"><col style=\"width:75.00%\">"));
        assert!(html.contains("<tr><td>1</td><td></td></tr>"));
    }

    #[test]
    fn a_chart_is_an_inline_svg_without_urls() {
        let chart = Chart {
            title: "T <1>".into(),
            y_label: "°C".into(),
            series: (0..1000).map(|i| (i * 60_000, (i % 50) as f64)).collect(),
            gaps: vec![(100 * 60_000, 200 * 60_000)],
            thresholds: vec![("limit".into(), 40.0)],
            shaded: vec![(300 * 60_000, 320 * 60_000)],
            from_ms: 0,
            to_ms: 1000 * 60_000,
            tz: jiff::tz::TimeZone::UTC,
        };
        let html = render_html(&doc(vec![Block::Chart(chart)]));
        assert!(html.contains("<svg"));
        assert!(html.contains("<title>T &lt;1&gt;</title>"));
        assert!(html.contains("°C"));
        assert!(!html.contains("http://") && !html.contains("https://"));
        assert!(html.matches("<polyline").count() >= 2);
    }
}

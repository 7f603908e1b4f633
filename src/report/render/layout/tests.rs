use super::grid::column_widths;
use super::*;

fn texts(page: &Page) -> Vec<(f32, String)> {
    page.iter()
        .filter_map(|op| match op {
            Op::Text { y, bytes, .. } => Some((*y, bytes.iter().map(|&b| char::from(b)).collect())),
            _ => None,
        })
        .collect()
}

fn doc(blocks: Vec<Block>) -> Document {
    Document {
        title: "Report".into(),
        subtitle: Some("Site A".into()),
        blocks,
        footer: "cryowatch".into(),
    }
}

fn table(rows: usize, long_cell: Option<usize>) -> Block {
    Block::Table {
        headers: vec!["Time".into(), "Sensor".into(), "Value".into()],
        rows: (0..rows)
            .map(|i| {
                let value = match long_cell {
                    Some(at) if at == i => "long ".repeat(1500),
                    _ => format!("{}.5", i),
                };
                vec![format!("row {i}"), "dewar-3/ln2".into(), value]
            })
            .collect(),
        widths: None,
    }
}

#[test]
fn a_300_row_table_continues_over_pages_with_its_header_repeated() {
    let pages = layout(&doc(vec![Block::Paragraph("Intro".into()), table(300, None)])).expect("layout");
    assert!(pages.len() >= 4, "{} pages", pages.len());
    let mut seen = Vec::new();
    for (i, page) in pages.iter().enumerate() {
        let t = texts(page);
        assert!(t.iter().any(|(_, s)| s == "Time"), "page {} lacks the header", i + 1);
        let footer = format!("page {} of {}", i + 1, pages.len());
        assert!(t.iter().any(|(_, s)| *s == footer), "page {} lacks {footer:?}", i + 1);
        for (y, s) in &t {
            assert!(*y <= TOP && *y >= FOOTER_BASELINE, "{s:?} at y={y}");
            if *y < MARGIN_BOTTOM {
                assert!(*y == FOOTER_BASELINE, "{s:?} runs into the footer at y={y}");
            }
            if let Some(n) = s.strip_prefix("row ") {
                seen.push(n.parse::<usize>().expect("row number"));
            }
        }
    }
    assert_eq!(seen, (0..300).collect::<Vec<_>>());
}

#[test]
fn a_row_taller_than_a_page_is_split_between_its_lines() {
    let pages = layout(&doc(vec![table(5, Some(2))])).expect("layout");
    assert!(pages.len() >= 2);
    let words: usize = pages
        .iter()
        .flat_map(texts)
        .map(|(_, s)| s.matches("long").count())
        .sum();
    assert_eq!(words, 1500);
}

#[test]
fn explicit_widths_are_relative_and_fill_the_content_width() {
    let w = column_widths(&[], &[], Some(&[1.0, 3.0]), 2);
    assert!((w[0] - CONTENT_WIDTH / 4.0).abs() < 0.01 && (w[1] - CONTENT_WIDTH * 0.75).abs() < 0.01);
    let auto = column_widths(
        &["a".into(), "b".into()],
        &[vec!["x".into(), "y".repeat(500)]],
        Some(&[1.0]),
        2,
    );
    assert!((auto.iter().sum::<f32>() - CONTENT_WIDTH).abs() < 0.01);
    assert!(auto[1] > auto[0]);
}

#[test]
fn page_breaks_start_new_pages_but_never_leave_an_empty_one() {
    let pages = layout(&doc(vec![
        Block::PageBreak,
        Block::Heading("One".into()),
        Block::PageBreak,
        Block::PageBreak,
        Block::Verdict {
            ok: false,
            text: "Audit chain: broken at record 17".into(),
        },
        Block::PageBreak,
    ]))
    .expect("layout");
    // Title page, "One", then the verdict; the repeated and trailing breaks add nothing.
    assert_eq!(pages.len(), 3);
    assert!(texts(&pages[2]).iter().any(|(_, s)| s == "FAIL"));
}

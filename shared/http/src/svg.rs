//! Small server-side SVG charts for the dashboard: no script, no library,
//! nothing fetched. Each helper returns one `<svg>` element; every text that
//! reaches it is escaped here, whatever the caller passed.

use std::fmt::Write;

use crate::dashboard::escape;

/// A linear map from a value domain onto a pixel range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    pub domain: (f64, f64),
    pub range: (f64, f64),
}

impl Scale {
    pub fn new(domain: (f64, f64), range: (f64, f64)) -> Scale {
        Scale { domain, range }
    }

    /// Where `value` lands; an empty domain maps everything to the range's start, and values outside the
    /// domain are clamped to the range so that a mark never leaves its chart.
    pub fn at(&self, value: f64) -> f64 {
        let (d0, d1) = self.domain;
        let (r0, r1) = self.range;
        let span = d1 - d0;
        if !value.is_finite() || span <= 0.0 || !span.is_finite() {
            return r0;
        }
        let t = ((value - d0) / span).clamp(0.0, 1.0);
        r0 + t * (r1 - r0)
    }
}

/// The domain that holds every value and zero, widened a little so that marks at the ends stay visible.
pub fn domain_with_zero(values: impl IntoIterator<Item = f64>) -> (f64, f64) {
    let (low, high) = values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold((0.0_f64, 0.0_f64), |(low, high), v| (low.min(v), high.max(v)));
    if high - low <= f64::EPSILON {
        return (low - 0.01, high + 0.01);
    }
    let pad = (high - low) * 0.05;
    (low - pad, high + pad)
}

/// One labelled horizontal bar of a [`horizontal_bars`] chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub label: String,
    pub value: f64,
    /// What the bar's value reads as (shown at its end).
    pub text: String,
}

const BAR_HEIGHT: f64 = 22.0;
const BAR_GAP: f64 = 8.0;
const LABEL_WIDTH: f64 = 170.0;
const VALUE_WIDTH: f64 = 90.0;

/// Horizontal bars from zero, scaled to the largest value (a funnel, a channel mix).
pub fn horizontal_bars(title: &str, bars: &[Bar], width: f64) -> String {
    let height = bars.len() as f64 * (BAR_HEIGHT + BAR_GAP) + BAR_GAP;
    let max = bars.iter().map(|b| b.value).filter(|v| v.is_finite()).fold(0.0_f64, f64::max);
    let scale = Scale::new((0.0, max), (0.0, width - LABEL_WIDTH - VALUE_WIDTH));
    let mut svg = open_svg(title, width, height);
    for (i, bar) in bars.iter().enumerate() {
        let y = BAR_GAP + i as f64 * (BAR_HEIGHT + BAR_GAP);
        let length = scale.at(bar.value).max(if bar.value > 0.0 { 1.0 } else { 0.0 });
        let text_y = y + BAR_HEIGHT * 0.7;
        let _ = write!(
            svg,
            concat!(
                r#"<text x="{lx:.1}" y="{text_y:.1}" text-anchor="end">{label}</text>"#,
                r#"<rect class="bar" x="{LABEL_WIDTH}" y="{y:.1}" width="{length:.1}" height="{BAR_HEIGHT}">"#,
                r#"<title>{label}: {text}</title></rect><text x="{tx:.1}" y="{text_y:.1}">{text}</text>"#,
            ),
            lx = LABEL_WIDTH - 6.0,
            label = escape(&bar.label),
            text = escape(&bar.text),
            tx = LABEL_WIDTH + length + 6.0,
            text_y = text_y,
            LABEL_WIDTH = LABEL_WIDTH,
            y = y,
            length = length,
            BAR_HEIGHT = BAR_HEIGHT,
        );
    }
    svg.push_str("</svg>");
    svg
}

/// An estimate with its interval on a shared axis: a line from low to high, a dot at the estimate and a
/// dashed line at zero, so a reader sees at once whether the interval excludes zero.
pub fn interval_bar(title: &str, estimate: f64, interval: (f64, f64), domain: (f64, f64), width: f64) -> String {
    let height = 24.0;
    let scale = Scale::new(domain, (8.0, width - 8.0));
    let (low, high) = (scale.at(interval.0), scale.at(interval.1));
    let mut svg = open_svg(title, width, height);
    let _ = write!(
        svg,
        concat!(
            r#"<line class="zero" x1="{z:.1}" y1="2" x2="{z:.1}" y2="22"/>"#,
            r#"<line class="ci" x1="{low:.1}" y1="12" x2="{high:.1}" y2="12"/>"#,
            r#"<line class="ci" x1="{low:.1}" y1="7" x2="{low:.1}" y2="17"/>"#,
            r#"<line class="ci" x1="{high:.1}" y1="7" x2="{high:.1}" y2="17"/>"#,
            r#"<circle class="estimate" cx="{e:.1}" cy="12" r="4"/></svg>"#,
        ),
        z = scale.at(0.0),
        e = scale.at(estimate),
        low = low,
        high = high,
    );
    svg
}

/// One day's pair of values in a [`paired_columns`] chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    pub label: String,
    pub first: f64,
    pub second: f64,
    /// Tooltips of the two columns.
    pub first_title: String,
    pub second_title: String,
}

/// Two columns per category (treated and held out per day), with a legend naming `names`.
pub fn paired_columns(title: &str, names: (&str, &str), pairs: &[Pair], width: f64) -> String {
    let (height, top, bottom, left) = (220.0, 28.0, 40.0, 8.0);
    let max = pairs.iter().flat_map(|p| [p.first, p.second]).filter(|v| v.is_finite()).fold(0.0_f64, f64::max);
    let scale = Scale::new((0.0, max), (0.0, height - top - bottom));
    let slot = if pairs.is_empty() { 0.0 } else { (width - 2.0 * left) / pairs.len() as f64 };
    let column = (slot * 0.35).min(28.0);
    let base = height - bottom;
    let mut svg = open_svg(title, width, height);
    let _ = write!(
        svg,
        concat!(
            r#"<rect class="first" x="{left}" y="6" width="12" height="12"/><text x="{a:.1}" y="16">{first}</text>"#,
            r#"<rect class="second" x="{b:.1}" y="6" width="12" height="12"/>"#,
            r#"<text x="{c:.1}" y="16">{second}</text>"#,
            r#"<line class="axis" x1="{left}" y1="{base}" x2="{r:.1}" y2="{base}"/>"#,
        ),
        a = left + 16.0,
        first = escape(names.0),
        b = left + 130.0,
        c = left + 146.0,
        second = escape(names.1),
        r = width - left,
        left = left,
        base = base,
    );
    // A label under every column pair would overlap past a fortnight: label about seven of them.
    let label_every = pairs.len().div_ceil(7).max(1);
    for (i, pair) in pairs.iter().enumerate() {
        let x = left + i as f64 * slot + slot / 2.0;
        for (class, value, tip, dx) in
            [("first", pair.first, &pair.first_title, -column), ("second", pair.second, &pair.second_title, 0.0)]
        {
            let h = scale.at(value);
            let _ = write!(
                svg,
                concat!(
                    r#"<rect class="{class}" x="{x:.1}" y="{y:.1}" width="{column:.1}" height="{h:.1}">"#,
                    r#"<title>{tip}</title></rect>"#,
                ),
                x = x + dx,
                y = base - h,
                tip = escape(tip),
                class = class,
                column = column,
                h = h,
            );
        }
        if i % label_every == 0 {
            let _ = write!(
                svg,
                r#"<text x="{x:.1}" y="{y:.1}" text-anchor="middle">{label}</text>"#,
                y = base + 16.0,
                label = escape(&pair.label),
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

fn open_svg(title: &str, width: f64, height: f64) -> String {
    format!(
        concat!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" viewBox="0 0 "#,
            r#"{width} {height}">"#,
            r#"<title>{}</title>"#,
        ),
        escape(title),
        width = width,
        height = height,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_a_scale_when_values_fall_inside_at_or_outside_the_domain_then_they_map_linearly_and_clamp() {
        let scale = Scale::new((-1.0, 3.0), (0.0, 400.0));
        assert_eq!(scale.at(-1.0), 0.0);
        assert_eq!(scale.at(1.0), 200.0);
        assert_eq!(scale.at(3.0), 400.0);
        assert_eq!(scale.at(10.0), 400.0, "clamped to the chart");
        assert_eq!(scale.at(-5.0), 0.0, "clamped to the chart");
        assert_eq!(scale.at(f64::NAN), 0.0);
        assert_eq!(Scale::new((2.0, 2.0), (10.0, 20.0)).at(2.0), 10.0, "an empty domain divides by nothing");
    }

    #[test]
    fn given_values_on_one_side_of_zero_when_a_domain_is_chosen_then_it_holds_zero_and_every_value() {
        let (low, high) = domain_with_zero([0.02, 0.05, f64::NAN]);
        assert!(low < 0.0 && high > 0.05, "({low}, {high})");
        let (low, high) = domain_with_zero([-0.03, -0.01]);
        assert!(low < -0.03 && high > 0.0, "({low}, {high})");
        let (low, high) = domain_with_zero([]);
        assert!(low < 0.0 && high > 0.0, "an empty chart still has a domain");
    }

    /// GIVEN an interval from 1 to 3 on a domain from -1 to 3 WHEN drawn 416 wide (400 inside the margins)
    /// THEN the interval runs from x=208 to x=408, the estimate sits at its value and zero at x=108.
    #[test]
    fn given_an_interval_when_drawn_then_its_ends_estimate_and_zero_sit_at_their_values() {
        let svg = interval_bar("lift", 2.0, (1.0, 3.0), (-1.0, 3.0), 416.0);
        assert!(svg.contains(r#"<line class="ci" x1="208.0" y1="12" x2="408.0" y2="12"/>"#), "{svg}");
        assert!(svg.contains(r#"<circle class="estimate" cx="308.0""#), "{svg}");
        assert!(svg.contains(r#"<line class="zero" x1="108.0""#), "{svg}");
    }

    #[test]
    fn given_bars_when_drawn_then_the_largest_fills_the_width_and_a_zero_bar_has_no_length() {
        let bars = [
            Bar { label: "Entered".into(), value: 200.0, text: "200".into() },
            Bar { label: "Sent".into(), value: 50.0, text: "50".into() },
            Bar { label: "Clicked".into(), value: 0.0, text: "0".into() },
        ];
        let svg = horizontal_bars("funnel", &bars, 560.0);
        let inner = 560.0 - LABEL_WIDTH - VALUE_WIDTH;
        assert!(svg.contains(&format!(r#"width="{inner:.1}""#)), "{svg}");
        assert!(svg.contains(&format!(r#"width="{:.1}""#, inner / 4.0)), "{svg}");
        assert!(svg.contains(r#"width="0.0""#), "{svg}");
        assert_eq!(svg.matches("<rect").count(), 3);
    }

    #[test]
    fn given_markup_in_labels_when_drawn_then_it_is_escaped_text() {
        let bars = [Bar { label: "<script>alert(1)</script>".into(), value: 1.0, text: "\"&'".into() }];
        let svg = horizontal_bars("<b>", &bars, 400.0);
        assert!(!svg.contains("<script>") && !svg.contains("<b>"), "{svg}");
        assert!(svg.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{svg}");
        assert!(svg.contains("&quot;&amp;&#39;"), "{svg}");
        let pairs = [Pair {
            label: "<i>".into(),
            first: 1.0,
            second: 2.0,
            first_title: "<a>".into(),
            second_title: "b".into(),
        }];
        let svg = paired_columns("t", ("<x>", "y"), &pairs, 300.0);
        assert!(!svg.contains("<i>") && !svg.contains("<a>") && !svg.contains("<x>"), "{svg}");
    }

    /// GIVEN two days, the second with twice the first's held-out value WHEN drawn THEN the tallest column is
    /// the second day's held-out one and fills the plot's height (152 px).
    #[test]
    fn given_paired_values_when_drawn_then_the_tallest_column_fills_the_plot() {
        let pair = |label: &str, first, second| Pair {
            label: label.into(),
            first,
            second,
            first_title: String::new(),
            second_title: String::new(),
        };
        let svg = paired_columns("t", ("treated", "held out"), &[pair("d1", 1.0, 2.0), pair("d2", 3.0, 4.0)], 300.0);
        assert!(svg.contains(r#"height="152.0""#), "{svg}");
        assert!(svg.contains(r#"height="38.0""#), "a quarter of the tallest: {svg}");
        assert_eq!(svg.matches(r#"<rect class="first" x"#).count(), 3, "legend and two columns");
    }
}

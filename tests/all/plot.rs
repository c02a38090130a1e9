//! `vecprop bench --plot`: the SVG that `bench::plot` renders.

use vecprop::bench::plot::{render_svg, write_svg};
use vecprop::bench::{BenchReport, Measurement, Shape};
use vecprop::{DType, Error};

const VARIANTS: [&str; 5] = [
    "cublas-gemm-only",
    "cublas+epilogue",
    "cublaslt-bias+act",
    "fused",
    "cpu",
];
const KN: [(usize, usize); 5] = [(64, 64), (256, 256), (784, 512), (1024, 1024), (4096, 4096)];
const MS: [usize; 9] = [1, 8, 64, 256, 1024, 4096, 16384, 32768, 65536];

/// A plausible median time for a variant on an H100-like device: launch overhead plus
/// the larger of memory and math time.
fn model_ms(shape: Shape, variant: &str, dtype: DType) -> f64 {
    let bytes = shape.min_bytes(dtype);
    let epilogue = (shape.m * shape.n * dtype.size_in_bytes()) as f64 * 3.0;
    let (rate, bw, overhead_us, extra_bytes) = match (variant, dtype) {
        ("cpu", _) => (1.2e12, 0.1e12, 20.0, 0.0),
        ("cublas-gemm-only", DType::F32) => (50e12, 2.6e12, 4.0, 0.0),
        ("cublas-gemm-only", _) => (650e12, 2.6e12, 4.0, 0.0),
        ("cublas+epilogue", DType::F32) => (50e12, 2.6e12, 7.0, epilogue),
        ("cublas+epilogue", _) => (650e12, 2.6e12, 7.0, epilogue),
        ("cublaslt-bias+act", DType::F32) => (48e12, 2.5e12, 5.0, 0.0),
        ("cublaslt-bias+act", _) => (620e12, 2.5e12, 5.0, 0.0),
        ("fused", DType::F32) => (42e12, 2.8e12, 3.5, 0.0),
        _ => (400e12, 2.8e12, 3.5, 0.0),
    };
    let seconds = overhead_us * 1e-6 + ((bytes + extra_bytes) / bw).max(shape.flops() / rate);
    seconds * 1e3
}

/// Five variants, two dtypes (the CPU in f32 only), five (K, N) pairs, nine Ms; the CPU
/// is missing from the 4096×4096 panel and fused from its largest M.
fn sample_report() -> BenchReport {
    let mut results = Vec::new();
    for (k, n) in KN {
        for m in MS {
            for dtype in [DType::F32, DType::BF16] {
                for variant in VARIANTS {
                    let skip = (variant == "cpu" && (dtype != DType::F32 || k == 4096))
                        || (variant == "fused" && k == 4096 && m == 65536);
                    if !skip {
                        let shape = Shape::new(m, k, n);
                        let ms = model_ms(shape, variant, dtype);
                        results.push(Measurement::new(shape, variant, dtype, ms));
                    }
                }
            }
        }
    }
    BenchReport {
        device: "NVIDIA H100 80GB HBM3 / driver 580.95 / CUDA 13.0".into(),
        results,
        ..Default::default()
    }
}

/// The text of each `<g class="panel" ...> ... </g>`, in document order.
fn panels(svg: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = svg;
    while let Some(start) = rest.find("<g class=\"panel\"") {
        let body = &rest[start..];
        let mut depth = 0usize;
        let mut end = body.len();
        let mut i = 0;
        while i < body.len() {
            if body[i..].starts_with("<g") {
                depth += 1;
            } else if body[i..].starts_with("</g>") {
                depth -= 1;
                if depth == 0 {
                    end = i + 4;
                    break;
                }
            }
            i += body[i..].chars().next().map_or(1, char::len_utf8);
        }
        out.push(&body[..end]);
        rest = &body[end..];
    }
    out
}

/// Checks that every start tag is closed in order, and that no text holds a bare `<` or
/// an `&` that starts no entity: enough of XML well-formedness to catch broken output.
fn assert_well_formed(svg: &str) {
    let mut stack: Vec<String> = Vec::new();
    let mut rest = svg;
    while let Some(open) = rest.find('<') {
        let text = &rest[..open];
        assert_entities(text);
        let close = rest[open..].find('>').expect("unterminated tag") + open;
        let tag = &rest[open + 1..close];
        assert!(!tag.contains('<'), "`<` inside tag `{tag}`");
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop().as_deref(), Some(name), "mismatched </{name}>");
        } else if !tag.ends_with('/') {
            let name = tag.split_whitespace().next().expect("empty tag");
            stack.push(name.to_string());
        }
        assert_entities(tag);
        assert_eq!(
            tag.matches('"').count() % 2,
            0,
            "unbalanced quotes in `{tag}`"
        );
        rest = &rest[close + 1..];
    }
    assert!(stack.is_empty(), "unclosed tags: {stack:?}");
}

fn assert_entities(text: &str) {
    for (i, _) in text.match_indices('&') {
        let entity = &text[i..];
        assert!(
            ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]
                .iter()
                .any(|e| entity.starts_with(e)),
            "bare `&` in `{text}`"
        );
    }
}

/// Every number in a coordinate attribute, with the attribute name.
fn coordinates(svg: &str) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for attr in [
        "x", "y", "cx", "cy", "x1", "y1", "x2", "y2", "width", "height",
    ] {
        let needle = format!(" {attr}=\"");
        for (i, _) in svg.match_indices(&needle) {
            let value = &svg[i + needle.len()..];
            let value = &value[..value.find('"').expect("unterminated attribute")];
            let number = value
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("{attr}=\"{value}\" is not a number"));
            out.push((attr.to_string(), number));
        }
    }
    for attr in ["d", "points"] {
        let needle = format!(" {attr}=\"");
        for (i, _) in svg.match_indices(&needle) {
            let value = &svg[i + needle.len()..];
            let value = &value[..value.find('"').expect("unterminated attribute")];
            for part in value.split([' ', ',', 'M', 'L']) {
                if !part.is_empty() {
                    let number = part
                        .parse::<f64>()
                        .unwrap_or_else(|_| panic!("{attr}: `{part}` is not a number"));
                    out.push((attr.to_string(), number));
                }
            }
        }
    }
    out
}

fn viewbox(svg: &str) -> (f64, f64) {
    let start = svg.find("viewBox=\"").expect("no viewBox") + 9;
    let value = &svg[start..start + svg[start..].find('"').expect("unterminated viewBox")];
    let parts: Vec<f64> = value
        .split_whitespace()
        .map(|p| p.parse().expect("viewBox number"))
        .collect();
    (parts[2], parts[3])
}

/// Markers are the only circles, rectangles and polygons a panel draws (● f32, □ bf16,
/// ▲ f16) besides the transparent tooltip circles; its axes and grid are lines and polylines.
fn count_markers(panel: &str) -> usize {
    let shapes: usize = ["<circle", "<rect", "<polygon"]
        .iter()
        .map(|tag| panel.matches(tag).count())
        .sum();
    shapes - panel.matches("<circle class=\"tooltip\"").count()
}

/// The axes' colour (`panel::AXIS`); every other stroke belongs to a series.
const AXIS_STROKE: &str = "stroke=\"#333333\"";

/// The stroke colours of the series lines in `part`, one per `<polyline>`, in order.
fn line_strokes(part: &str) -> Vec<&str> {
    part.split("<polyline")
        .skip(1)
        .filter(|element| !element.contains(AXIS_STROKE))
        .map(|element| {
            let start = element.find("stroke=\"").expect("stroke") + 8;
            &element[start..start + 7]
        })
        .collect()
}

/// The text of each `<text>` element, trimmed.
fn texts(part: &str) -> Vec<&str> {
    part.split("<text")
        .skip(1)
        .map(|element| {
            let body = &element[element.find('>').expect("text tag") + 1..];
            body[..body.find("</text>").expect("text end")].trim()
        })
        .collect()
}

/// The legend's entries in order: (label, stroke colour, number of line pieces). Each entry
/// draws its line (one piece when solid, several when dashed), its marker, then its label.
fn legend_entries(svg: &str) -> Vec<(String, String, usize)> {
    let start = svg.find("<g class=\"legend\">").expect("no legend");
    let legend = &svg[start..start + svg[start..].find("</g>").expect("legend end")];
    legend
        .split_inclusive("</text>")
        .filter(|entry| entry.contains("</text>"))
        .map(|entry| {
            let strokes = line_strokes(entry);
            let colour = strokes.first().expect("an entry's line").to_string();
            (texts(entry)[0].to_string(), colour, strokes.len())
        })
        .collect()
}

#[test]
fn one_panel_per_kn_pair_with_its_title() {
    let svg = render_svg(&sample_report());
    assert!(svg.starts_with("<svg"));
    assert_well_formed(&svg);
    let panels = panels(&svg);
    assert_eq!(panels.len(), KN.len());
    for ((k, n), panel) in KN.iter().zip(&panels) {
        assert!(panel.contains(&format!("K×N = {k}×{n}")), "{k}×{n}");
        assert!(panel.contains(&format!("data-k=\"{k}\" data-n=\"{n}\"")));
    }
}

#[test]
fn legend_has_one_entry_per_variant_and_dtype() {
    let entries = legend_entries(&render_svg(&sample_report()));
    let labels: Vec<&str> = entries.iter().map(|(label, _, _)| label.as_str()).collect();
    // Four GPU variants in two dtypes, and the CPU in f32.
    assert_eq!(entries.len(), 9, "{labels:?}");
    for variant in VARIANTS {
        let escaped = variant.replace('&', "&amp;");
        assert!(
            labels.contains(&format!("{escaped} (f32)").as_str()),
            "{variant}"
        );
    }
    assert!(!labels.contains(&"cpu (bf16)"));
    // Fused and cuBLAS are told apart by colour and by dash pattern.
    let entry = |label: &str| {
        entries
            .iter()
            .find(|(l, _, _)| l == label)
            .unwrap_or_else(|| panic!("no entry {label}"))
    };
    let fused = entry("fused (f32)");
    let cublas = entry("cublas+epilogue (f32)");
    assert_ne!(fused.1, cublas.1);
    assert_eq!(fused.2, 1, "fused is a solid line");
    assert!(cublas.2 > 1, "cublas+epilogue is dashed");
}

#[test]
fn every_coordinate_is_a_finite_number_inside_the_picture() {
    let mut report = sample_report();
    let shape = Shape::new(128, 64, 64);
    report
        .results
        .push(Measurement::new(shape, "fused", DType::F32, 0.0)); // infinite
    report
        .results
        .push(Measurement::new(shape, "fused", DType::BF16, f64::NAN));
    let mut zero = Measurement::new(shape, "cpu", DType::F32, 1.0);
    zero.gflops = 0.0;
    report.results.push(zero);
    let svg = render_svg(&report);
    assert_well_formed(&svg);
    assert!(!svg.contains("NaN") && !svg.contains("inf"));
    let (width, height) = viewbox(&svg);
    let coordinates = coordinates(&svg);
    assert!(coordinates.len() > 500);
    for (attr, v) in coordinates {
        assert!(v.is_finite(), "{attr}={v}");
        assert!((-1000.0..=width.max(height)).contains(&v), "{attr}={v}");
    }
    // The bad points are left out: the 64×64 panel draws as many markers as before.
    let before = count_markers(panels(&render_svg(&sample_report()))[0]);
    assert_eq!(count_markers(panels(&svg)[0]), before);
}

#[test]
fn missing_variants_leave_their_panel_alone() {
    let svg = render_svg(&sample_report());
    let panels = panels(&svg);
    let last = panels.last().expect("panels");
    let cpu = legend_entries(&svg)
        .into_iter()
        .find(|(label, _, _)| label == "cpu (f32)")
        .expect("cpu in the legend")
        .1;
    assert!(!last.contains(&format!("fill=\"{cpu}\"")));
    assert!(panels[0].contains(&format!("fill=\"{cpu}\"")));
    // 4 GPU variants × 2 dtypes × 9 Ms, less fused at M = 65536 in both dtypes.
    assert_eq!(count_markers(last), 4 * 2 * MS.len() - 2);
    assert_eq!(count_markers(panels[0]), 4 * 2 * MS.len() + MS.len());
}

#[test]
fn a_single_point_draws_a_marker_and_no_line() {
    let report = BenchReport {
        device: "cpu".into(),
        results: vec![Measurement::new(
            Shape::new(4096, 784, 512),
            "cpu",
            DType::F32,
            3.0,
        )],
        ..Default::default()
    };
    let svg = render_svg(&report);
    assert_well_formed(&svg);
    let panels = panels(&svg);
    assert_eq!(panels.len(), 1);
    assert_eq!(count_markers(panels[0]), 1);
    assert!(line_strokes(panels[0]).is_empty());
    // 2·4096·784·512 / 3 ms = 1096 GFLOP/s, so the axis reads TFLOP/s.
    assert!(texts(panels[0]).contains(&"TFLOP/s"));
}

#[test]
fn small_throughputs_are_labelled_in_gflops() {
    let report = BenchReport {
        device: "cpu".into(),
        results: [1, 64, 4096]
            .into_iter()
            .map(|m| Measurement::new(Shape::new(m, 64, 64), "cpu", DType::F32, 0.05))
            .collect(),
        ..Default::default()
    };
    let svg = render_svg(&report);
    assert!(texts(&svg).contains(&"GFLOP/s"));
    assert!(!svg.contains("TFLOP/s"));
    // Three points on one line (dotted: several pieces, one colour).
    let panel = panels(&svg)[0];
    let mut strokes = line_strokes(panel);
    assert!(!strokes.is_empty());
    strokes.dedup();
    assert_eq!(strokes.len(), 1);
    assert_eq!(count_markers(panel), 3);
}

#[test]
fn text_is_escaped() {
    let mut report = sample_report();
    report.device = "R&D <GPU> \"x\"".into();
    report.results.truncate(3);
    for r in &mut report.results {
        r.variant = "a<b&c".into();
    }
    let svg = render_svg(&report);
    assert_well_formed(&svg);
    assert!(svg.contains("R&amp;D &lt;GPU&gt; &quot;x&quot;"));
    assert!(!svg.contains("<GPU>"));
    assert!(svg.contains("a&lt;b&amp;c"));
    assert!(!svg.contains("a<b"));
}

#[test]
fn an_empty_report_is_still_a_picture() {
    let report = BenchReport {
        device: "cpu".into(),
        results: Vec::new(),
        ..Default::default()
    };
    let svg = render_svg(&report);
    assert_well_formed(&svg);
    assert!(panels(&svg).is_empty());
    assert!(svg.contains("no measurements"));
}

#[test]
fn write_svg_replaces_the_file_and_leaves_no_temporary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bench.svg");
    std::fs::write(&path, "old").expect("write");
    let report = sample_report();
    write_svg(&report, &path).expect("write_svg");
    let written = std::fs::read_to_string(&path).expect("read");
    assert_eq!(written, render_svg(&report));
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("bench.svg")]);

    // Set VECPROP_SAMPLE_SVG=/tmp/sample.svg to look at the sample report.
    if let Some(sample) = std::env::var_os("VECPROP_SAMPLE_SVG") {
        write_svg(&report, sample).expect("write the sample");
    }
}

#[test]
fn write_svg_names_the_path_it_cannot_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("no-such-dir").join("bench.svg");
    match write_svg(&sample_report(), &path) {
        Err(Error::Io { path: p, .. }) => assert_eq!(p, path),
        other => panic!("expected Error::Io, got {other:?}"),
    }
    assert!(matches!(
        write_svg(&sample_report(), dir.path().join("..")),
        Err(Error::InvalidArgument(_))
    ));
}

/// Hovering over a point shows its exact value: each measurement has one `<title>` naming
/// its series, M, throughput and time, on a hit area at the point's marker.
#[test]
fn every_point_has_a_tooltip_with_its_exact_value() {
    let report = sample_report();
    let svg = render_svg(&report);
    assert_well_formed(&svg);
    let titles: Vec<&str> = svg
        .split("<circle class=\"tooltip\"")
        .skip(1)
        .map(|hit| {
            let start = hit.find("<title>").expect("a tooltip holds a title") + "<title>".len();
            &hit[start..start + hit[start..].find("</title>").unwrap()]
        })
        .collect();
    assert_eq!(
        titles.len(),
        report.results.len(),
        "one tooltip per measurement"
    );
    for r in &report.results {
        // The unit is TFLOP/s: the sample reaches well past 1 TFLOP/s.
        let want = format!(
            "{} ({}): M = {}, {:.4} TFLOP/s, {:.4} ms",
            r.variant,
            r.dtype,
            r.m,
            r.gflops / 1e3,
            r.median_ms
        );
        let want = want.replace('&', "&amp;");
        assert!(titles.contains(&want.as_str()), "no tooltip {want:?}");
    }
}

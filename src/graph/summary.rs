//! The Keras-style `summary()` table.

use std::fmt::Write;

use crate::graph::network::Network;

impl Network {
    /// A Keras-style table of the layers, their output shapes and parameter counts.
    pub fn summary(&self) -> String {
        render(self, None)
    }
}

/// Renders the table. `choices` adds a column with the kernel each layer runs (from a plan).
pub(crate) fn render(network: &Network, choices: Option<&[String]>) -> String {
    let mut rows: Vec<[String; 4]> = network
        .layers()
        .iter()
        .enumerate()
        .map(|(i, layer)| {
            let folded: String = layer
                .folded()
                .iter()
                .map(|what| format!(" + {what} folded"))
                .collect();
            [
                format!("{} (Dense{folded}, {})", layer.name(), layer.activation()),
                format!("(None, {})", layer.units()),
                group_thousands(layer.parameter_count()),
                choices.and_then(|c| c.get(i).cloned()).unwrap_or_default(),
            ]
        })
        .collect();
    let header = [
        "Layer (type)".to_string(),
        "Output Shape".to_string(),
        "Param #".to_string(),
        if choices.is_some() {
            "Kernel".to_string()
        } else {
            String::new()
        },
    ];
    rows.insert(0, header);
    let columns = if choices.is_some() { 4 } else { 3 };
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0) + 3)
        .collect();
    let total_width: usize = widths.iter().sum();

    let mut out = String::new();
    let _ = writeln!(
        out,
        "Model: \"vecprop\" (input width {}, dtype {})",
        network.input_width(),
        network.dtype()
    );
    let _ = writeln!(out, "{}", "━".repeat(total_width));
    for (index, row) in rows.iter().enumerate() {
        let line: String = (0..columns)
            .map(|c| format!("{:<width$}", row[c], width = widths[c]))
            .collect();
        let _ = writeln!(out, "{}", line.trim_end());
        let rule = if index == 0 { "━" } else { "─" };
        if index == 0 || index + 1 < rows.len() {
            let _ = writeln!(out, "{}", rule.repeat(total_width));
        }
    }
    let _ = writeln!(out, "{}", "━".repeat(total_width));
    let total = network.parameter_count();
    let bytes = total * network.dtype().size_in_bytes();
    let _ = writeln!(
        out,
        " Total params: {} ({})",
        group_thousands(total),
        crate::size::human_bytes(bytes as u64)
    );
    let _ = writeln!(out, " Trainable params: {}", group_thousands(total));
    let _ = writeln!(out, " Non-trainable params: 0");
    out
}

fn group_thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::Activation;

    #[test]
    fn summary_lists_layers_shapes_and_counts() {
        let net = Network::builder(784)
            .dense(512, Activation::Sigmoid)
            .dense(10, Activation::Softmax)
            .build()
            .unwrap();
        let text = net.summary();
        assert!(text.contains("dense_0 (Dense, sigmoid)"), "{text}");
        assert!(text.contains("(None, 512)"), "{text}");
        assert!(text.contains("401,920"), "{text}");
        assert!(text.contains("dense_1 (Dense, softmax)"), "{text}");
        assert!(text.contains("Total params: 407,050"), "{text}");
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(group_thousands(0), "0");
        assert_eq!(group_thousands(999), "999");
        assert_eq!(group_thousands(1000), "1,000");
        assert_eq!(group_thousands(1234567), "1,234,567");
    }
}

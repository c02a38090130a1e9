//! The benchmark engine shared by `vecprop bench` and the criterion benches.

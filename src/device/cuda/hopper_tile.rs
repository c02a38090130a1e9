//! The Hopper kernels' tile geometry (kernels/hopper_dense_sm90a.cu, `HopperTile`): what the
//! launcher (`hopper`) and the kernel table (`kernels`, for the dynamic shared memory) share.

/// Output tile rows and threads per block (kernels/hopper_dense_sm90a.cu, `HopperTile`).
pub(super) const TILE_ROWS: usize = 128;
pub(super) const THREADS: u32 = 384;
/// k depth of one TMA box and the column width of one 128-byte swizzled W box.
pub(super) const BOX_K: u32 = 64;
pub(super) const BOX_W_COLS: u32 = 64;

/// Which tile: `HopperWide` (the wgmma_* kernels) or `HopperNarrow` (wgmma_narrow_*).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HopperTile {
    Wide,
    Narrow,
}

/// Output tile columns: 256 wide, 128 narrow.
pub(super) fn tile_cols(tile: HopperTile) -> usize {
    match tile {
        HopperTile::Wide => 256,
        HopperTile::Narrow => 128,
    }
}

/// `HopperTile::SHARED_BYTES`: the stages (16 KB of A + 64 k × tile columns of W each), two
/// mbarriers per stage and 1 KB of alignment slack; the kernel asserts the same numbers.
pub(super) fn shared_bytes(tile: HopperTile) -> u32 {
    let stages: u32 = match tile {
        HopperTile::Wide => 4,
        HopperTile::Narrow => 6,
    };
    let stage = 16 * 1024 + BOX_K * tile_cols(tile) as u32 * 2;
    stages * stage + 2 * stages * 8 + 1024
}

#!/usr/bin/env python3
"""Writes the fuzz seeds of issue 20, item 1: safetensors files whose 8-byte header length
begins with a pickle's protocol marker (0x80, then 0x02-0x05), so the fuzzer starts from the
lengths that were once refused as pickles.

  fuzz/corpus/safetensors_model/header_len_<N>.safetensors   N = 640, 896, 1152, 1408, 66176

Each holds the worked example (W = [[1, -3, 5], [-2, 4, -6]] as `0.weight` in torch layout,
B = [-1, 1, 2], sigmoid), its JSON header padded with trailing spaces to exactly N bytes, as
the safetensors format allows. Standard library only.

Run from the repository root:  python3 scripts/make_header_length_seeds.py
"""

import json
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fuzz", "corpus", "safetensors_model")
LENGTHS = [0x80 + (protocol << 8) for protocol in range(2, 6)] + [0x80 + (2 << 8) + (1 << 16)]


def worked_example(header_len):
    weight = [1.0, -2.0, -3.0, 4.0, 5.0, -6.0]  # [units=3, inputs=2], row-major
    bias = [-1.0, 1.0, 2.0]
    data = struct.pack("<6f", *weight) + struct.pack("<3f", *bias)
    header = {
        "__metadata__": {"activations": "sigmoid"},
        "0.weight": {"dtype": "F32", "shape": [3, 2], "data_offsets": [0, 24]},
        "0.bias": {"dtype": "F32", "shape": [3], "data_offsets": [24, 36]},
    }
    text = json.dumps(header, separators=(",", ":")).encode()
    assert len(text) <= header_len
    text += b" " * (header_len - len(text))
    return struct.pack("<Q", header_len) + text + data


def main():
    os.makedirs(OUT, exist_ok=True)
    for n in LENGTHS:
        blob = worked_example(n)
        assert blob[0] == 0x80 and 2 <= blob[1] <= 5 and blob[8:9] == b"{"
        path = os.path.join(OUT, f"header_len_{n}.safetensors")
        with open(path + ".partial", "wb") as f:
            f.write(blob)
        os.replace(path + ".partial", path)
        print(path, len(blob))


if __name__ == "__main__":
    main()

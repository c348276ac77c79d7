"""Window partials as run-tag text well under MLflow's run tag limit (8,000 characters on 3.0-3.17).

`WindowPartial.encode` writes each sketch bucket as `"index":count`, about 10 characters a bucket. An hour of a busy
model group fills 300-500 latency buckets and as many time-to-first-token buckets (gamma 1.02): 7-10k characters,
so a wide latency spread is refused as a run tag, and a month of them per run is 5 MB to load. Packed, a sketch is
its lowest bucket index then every count from there to the highest (zeros included) as varints, deflated and
base64-encoded: the same hour takes about 1.8k characters, and decoding gives the identical partial. Text written by
the plain encoding still decodes.
"""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any

from litellm_mlflow.rollup.figures import WindowPartial

SKETCH_FIELDS = ("l", "t")  # latency and time to first token in WindowPartial's encoding


def pack_partial(partial: WindowPartial) -> dict[str, Any]:
    data = json.loads(partial.encode())
    for name in SKETCH_FIELDS:
        data[name] = _pack_sketch(data[name])
    return data


def unpack_partial(data: dict[str, Any]) -> WindowPartial:
    plain = dict(data)
    for name in SKETCH_FIELDS:
        if isinstance(plain[name], str):
            plain[name] = _unpack_sketch(plain[name])
    return WindowPartial.decode(json.dumps(plain))


def encode_partial(partial: WindowPartial) -> str:
    return json.dumps(pack_partial(partial), separators=(",", ":"), sort_keys=True)


def decode_partial(text: str) -> WindowPartial:
    return unpack_partial(json.loads(text))


def _pack_sketch(buckets: dict[str, int]) -> str:
    if not buckets:
        return ""
    counts = {int(index): int(count) for index, count in buckets.items()}
    low, high = min(counts), max(counts)
    raw = bytearray(_varint((low << 1) ^ (low >> 63)))  # zigzag: bucket indexes go below 0 under 1 ms
    for index in range(low, high + 1):
        raw += _varint(counts.get(index, 0))
    return base64.b64encode(zlib.compress(bytes(raw), 9)).decode("ascii")


def _unpack_sketch(text: str) -> dict[str, int]:
    if not text:
        return {}
    raw = zlib.decompress(base64.b64decode(text))
    values, value, shift = [], 0, 0
    for byte in raw:
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            values.append(value)
            value, shift = 0, 0
    low = (values[0] >> 1) ^ -(values[0] & 1)
    return {str(low + offset): count for offset, count in enumerate(values[1:]) if count}


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)

"""GPU throughput of the CUDA backend against plain PyTorch on the same device (issue 3).

Cases (float32, s = 0.9, 3 blocks per sign, 8 bits, as DESIGN.md §5):

- encode / decode of 64M elements (device time, CUDA events), and the bandwidth they reach
  as a fraction of a device-to-device copy of the same tensor measured in the same run;
- encode of one 4096-float token; encode_batch of 2048 x 4096 rows (one stream per row);
- the plain-PyTorch pipeline a user writes today (topk + sign split + equal-cardinality
  blocks + min/max quantize; scatter for decode), run in the same process on the same GPU.

Dense mode (format 2, ``--cases dense``): encode (to host bytes) and decode (device stream to
device array) of 64M float32 and 16M bfloat16 elements at step 0.05 on the GPU, and of the 64M
float32 as 65536 rows of 1024 with 16 class tables along the rows (mode 2, docs/format.md §19),
each checked byte for byte against the CPU codec's stream and decode in the same run, plus the
CPU codec's own time.

Run: ``python bench/bench_cuda.py [--repeats 20] [--cases all|topk|dense] [--json out.json]``.
Needs an NVIDIA GPU, PyTorch with CUDA and slicer built with its CUDA backend; otherwise it
exits with a message.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from typing import Any

TARGETS_MS = {  # issue 3 targets on an H100
    "encode_64M": 0.4,
    "decode_64M": 0.25,
    "encode_token_4096": 0.020,
    "encode_batch_2048x4096": 0.15,
}
SPARSITY = 0.9
BLOCKS = 3
BITS = 8


def require_gpu() -> tuple[Any, Any, Any]:
    """(torch, slicer, slicer._gpu) or SystemExit with the reason."""
    try:
        import torch
    except ImportError:
        raise SystemExit("bench_cuda.py needs PyTorch with CUDA (import torch failed)") from None
    if not torch.cuda.is_available():
        raise SystemExit("bench_cuda.py needs an NVIDIA GPU: torch.cuda.is_available() is False")
    import slicer

    try:
        from slicer import _gpu
    except ImportError:
        raise SystemExit("bench_cuda.py needs slicer built with its CUDA backend") from None
    if not _gpu.available():
        raise SystemExit("slicer's CUDA backend sees no usable GPU / driver")
    return torch, slicer, _gpu


def device_ms(torch: Any, fn: Callable[[], object], repeats: int, warmup: int = 3) -> float:
    """Median time of `fn` between two CUDA events on the current stream, in ms."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    samples = []
    for _ in range(repeats):
        start = torch.cuda.Event(enable_timing=True)
        stop = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        samples.append(start.elapsed_time(stop))
    return statistics.median(samples)


def torch_encode(x: Any, sparsity: float = SPARSITY, blocks: int = BLOCKS, bits: int = BITS):
    """The plain-PyTorch baseline of DESIGN.md §5, on x's device."""
    import torch

    flat = x.reshape(-1)
    k = int(flat.numel() * (1 - sparsity))
    mag, top = torch.topk(flat.abs(), k, sorted=True)
    positive = flat[top] > 0
    order = torch.cat([top[positive], top[~positive]])
    a = torch.cat([mag[positive], mag[~positive]])
    n_pos = int(positive.sum())
    levels = (1 << bits) - 1
    codes, bounds = [], []
    for start, stop in ((0, n_pos), (n_pos, k)):
        count = stop - start
        for m in range(blocks):
            b0 = start + m * count // blocks
            b1 = start + (m + 1) * count // blocks
            if b1 == b0:
                continue
            seg = a[b0:b1]
            hi, lo = seg[0], seg[-1]
            step = torch.where(hi > lo, (hi - lo) / levels, torch.ones_like(hi))
            codes.append(torch.clamp(torch.round((seg - lo) / step), 0, levels).to(torch.uint8))
            bounds.append((b0, b1, lo, step))
    return flat.numel(), order, torch.cat(codes), k - n_pos, bounds


def torch_decode(encoded: Any) -> Any:
    import torch

    n, order, codes, negative, bounds = encoded
    out = torch.zeros(n, dtype=torch.float32, device=order.device)
    values = torch.cat([codes[b0:b1].float() * step + lo for b0, b1, lo, step in bounds])
    values[values.numel() - negative :] *= -1.0
    out[order] = values
    return out


def run_dense(repeats: int) -> dict[str, Any]:
    """Dense-mode GPU encode/decode, byte-checked against the CPU codec in the same run."""
    import time

    import numpy as np

    torch, slicer, gpu = require_gpu()
    gen = torch.Generator(device="cuda").manual_seed(20261201)
    results: dict[str, Any] = {"device": torch.cuda.get_device_name(), "repeats": repeats}
    t: dict[str, float] = {}
    sizes: dict[str, int] = {}
    for name, n, dtype, kw in (
        ("f32_64M", 64 << 20, torch.float32, {}),
        ("bf16_16M", 16 << 20, torch.bfloat16, {}),
        ("f32_64M_rows_c16", 64 << 20, torch.float32, {"classes": 16}),
    ):
        x = torch.randn(n, device="cuda", generator=gen).to(dtype)
        if kw:  # positions with different spreads, as the channels of LLM states
            x = x.view(-1, 1024) * torch.logspace(-1, 1, 1024, device="cuda")
        stream = slicer.encode(x, mode="dense", step=0.05, **kw)
        host = x.cpu()
        host_np = (
            host.view(torch.int16).numpy().view(np.uint16) if dtype == torch.bfloat16 else None
        )
        if host_np is not None:
            import ml_dtypes

            host_np = host_np.view(ml_dtypes.bfloat16)
        else:
            host_np = host.numpy()
        start = time.perf_counter()
        cpu_stream = slicer.encode(host_np, mode="dense", step=0.05, **kw)
        t[f"cpu_dense_encode_{name}"] = (time.perf_counter() - start) * 1e3
        assert stream == cpu_stream, f"{name}: GPU dense stream differs from the CPU codec's"
        start = time.perf_counter()
        expect = slicer.decode(cpu_stream)
        t[f"cpu_dense_decode_{name}"] = (time.perf_counter() - start) * 1e3
        on_device = torch.frombuffer(bytearray(stream), dtype=torch.uint8).cuda()
        got = torch.from_dlpack(slicer.decode(on_device, device="cuda")).cpu()
        got_np = got.view(torch.int16).numpy() if dtype == torch.bfloat16 else got.numpy()
        expect_bits = expect.view(np.int16) if dtype == torch.bfloat16 else expect
        assert got_np.tobytes() == expect_bits.tobytes(), f"{name}: GPU decode differs"
        t[f"dense_encode_{name}"] = device_ms(
            torch, lambda x=x, kw=kw: slicer.encode(x, mode="dense", step=0.05, **kw), repeats
        )
        t[f"dense_decode_{name}"] = device_ms(
            torch, lambda s=on_device: slicer.decode(s, device="cuda"), repeats
        )
        sizes[name] = len(stream)
    results["ms"] = t
    results["stream_bytes"] = sizes
    return results


def run(repeats: int) -> dict[str, Any]:
    torch, slicer, gpu = require_gpu()
    from slicer._params import make_params

    params = make_params(sparsity=SPARSITY, blocks=BLOCKS, bits=BITS)
    gen = torch.Generator(device="cuda").manual_seed(20260127)
    big = torch.randn(64 << 20, device="cuda", generator=gen)
    token = torch.randn(4096, device="cuda", generator=gen)
    rows = torch.randn(2048, 4096, device="cuda", generator=gen)
    results: dict[str, Any] = {"device": torch.cuda.get_device_name(), "repeats": repeats}
    t: dict[str, float] = {}

    # The roof: a device-to-device copy of the 64M tensor (read + write).
    copy_dst = torch.empty_like(big)
    t["copy_64M"] = device_ms(torch, lambda: copy_dst.copy_(big), repeats)

    stream_dev = gpu.encode(big, params, out="device")
    stream_bytes = bytes(gpu.encode(big, params, out="host"))
    assert torch.from_dlpack(stream_dev).cpu().numpy().tobytes() == stream_bytes
    t["encode_64M"] = device_ms(torch, lambda: gpu.encode(big, params, out="device"), repeats)
    t["encode_64M_to_host"] = device_ms(torch, lambda: gpu.encode(big, params), repeats)
    t["decode_64M"] = device_ms(torch, lambda: gpu.decode(stream_dev), repeats)
    t["encode_token_4096"] = device_ms(torch, lambda: gpu.encode(token, params), repeats)
    t["encode_batch_2048x4096"] = device_ms(
        torch, lambda: gpu.encode_batch(rows, 0, params), repeats
    )

    base = torch_encode(big)
    t["torch_encode_64M"] = device_ms(torch, lambda: torch_encode(big), repeats)
    t["torch_decode_64M"] = device_ms(torch, lambda: torch_decode(base), repeats)
    t["torch_encode_token_4096"] = device_ms(torch, lambda: torch_encode(token), repeats)

    n_bytes = big.numel() * 4
    copy_gbs = 2 * n_bytes / (t["copy_64M"] * 1e-3) / 1e9
    results["ms"] = t
    results["stream_bytes_64M"] = len(stream_bytes)
    results["copy_GBps"] = copy_gbs
    # Encode reads the tensor; decode writes it. Their effective rate over the copy's.
    results["encode_fraction_of_copy"] = (n_bytes / (t["encode_64M"] * 1e-3) / 1e9) / copy_gbs
    results["decode_fraction_of_copy"] = (n_bytes / (t["decode_64M"] * 1e-3) / 1e9) / copy_gbs
    results["speedup_vs_torch"] = {
        "encode_64M": t["torch_encode_64M"] / t["encode_64M"],
        "decode_64M": t["torch_decode_64M"] / t["decode_64M"],
        "encode_token_4096": t["torch_encode_token_4096"] / t["encode_token_4096"],
    }
    results["targets_ms"] = TARGETS_MS
    results["met"] = {name: t[name] <= limit for name, limit in TARGETS_MS.items()}
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--cases", choices=["all", "topk", "dense"], default="all")
    args = parser.parse_args(argv)
    dense = run_dense(args.repeats) if args.cases in ("all", "dense") else None
    if dense is not None:
        print(f"device: {dense['device']}  dense mode (median of {args.repeats}, CUDA events;")
        print("  cpu_* are one wall-clock run of the CPU codec, bytes checked equal)")
        for name, ms in dense["ms"].items():
            print(f"  {name:28s} {ms:9.4f} ms")
        print(f"  stream bytes: {dense['stream_bytes']}")
    if args.cases == "dense":
        if args.json:
            with open(args.json, "w") as fh:
                json.dump({"dense": dense}, fh, indent=1)
        return 0
    results = run(args.repeats)
    if dense is not None:
        results["dense"] = dense
    print(f"device: {results['device']}  (median of {args.repeats}, CUDA events)")
    for name, ms in results["ms"].items():
        target = TARGETS_MS.get(name)
        note = f"  target <= {target} ms: {'met' if ms <= target else 'MISSED'}" if target else ""
        print(f"  {name:28s} {ms:9.4f} ms{note}")
    print(
        f"  copy roof {results['copy_GBps']:.0f} GB/s; encode at "
        f"{results['encode_fraction_of_copy']:.2f}, decode at "
        f"{results['decode_fraction_of_copy']:.2f} of it"
    )
    for name, ratio in results["speedup_vs_torch"].items():
        print(f"  {name:28s} {ratio:7.1f}x faster than plain PyTorch")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

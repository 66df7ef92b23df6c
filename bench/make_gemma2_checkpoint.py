#!/usr/bin/env python3
"""Writes a random Gemma-2 checkpoint with the exact Hugging Face names and shapes, for load and
forward benchmarks (not a test fixture: the weights are noise). NumPy only, no torch.

    python3 bench/make_gemma2_checkpoint.py --out /tmp/gemma2-2b-bf16 --preset 2b --dtype bf16 --shards 3

writes config.json, and model.safetensors (--shards 1) or model-0000k-of-0000N.safetensors plus
model.safetensors.index.json, as transformers' save_pretrained does. Tensors are streamed chunk by
chunk, so the host memory stays small even for 9b. Weights are N(0, 0.02²), norm weights N(0, 0.1²).
"""
import argparse
import json
import os
import struct
import sys

import numpy as np

# Sizes of the real models (their config.json on the Hugging Face hub); "tiny" is the fixture's.
PRESETS = {
    "2b": dict(vocab_size=256000, hidden_size=2304, intermediate_size=9216, num_hidden_layers=26,
               num_attention_heads=8, num_key_value_heads=4, head_dim=256, query_pre_attn_scalar=256,
               sliding_window=4096),
    "9b": dict(vocab_size=256000, hidden_size=3584, intermediate_size=14336, num_hidden_layers=42,
               num_attention_heads=16, num_key_value_heads=8, head_dim=256, query_pre_attn_scalar=256,
               sliding_window=4096),
    "tiny": dict(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                 num_attention_heads=4, num_key_value_heads=2, head_dim=24, query_pre_attn_scalar=16,
                 sliding_window=8),
}

# The other keys of tests/fixtures/gemma2-tiny/model/config.json (transformers 4.46).
BASE_CONFIG = {
    "architectures": ["Gemma2ForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "attn_logit_softcapping": 50.0,
    "bos_token_id": 2,
    "cache_implementation": "hybrid",
    "eos_token_id": 1,
    "final_logit_softcapping": 30.0,
    "hidden_act": "gelu_pytorch_tanh",
    "hidden_activation": "gelu_pytorch_tanh",
    "initializer_range": 0.02,
    "max_position_embeddings": 8192,
    "model_type": "gemma2",
    "pad_token_id": 0,
    "rms_norm_eps": 1e-06,
    "rope_theta": 10000.0,
    "transformers_version": "4.46.3",
    "use_cache": True,
}

CHUNK = 1 << 24  # elements generated at a time


def tensors(c):
    """(name, shape) of every tensor, in Hugging Face's order (embedding, layers, final norm)."""
    D, M, H, K, Dh = (c["hidden_size"], c["intermediate_size"], c["num_attention_heads"],
                      c["num_key_value_heads"], c["head_dim"])
    out = [("model.embed_tokens.weight", (c["vocab_size"], D))]
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        out += [
            (p + "input_layernorm.weight", (D,)),
            (p + "self_attn.q_proj.weight", (H * Dh, D)),
            (p + "self_attn.k_proj.weight", (K * Dh, D)),
            (p + "self_attn.v_proj.weight", (K * Dh, D)),
            (p + "self_attn.o_proj.weight", (D, H * Dh)),
            (p + "post_attention_layernorm.weight", (D,)),
            (p + "pre_feedforward_layernorm.weight", (D,)),
            (p + "mlp.gate_proj.weight", (M, D)),
            (p + "mlp.up_proj.weight", (M, D)),
            (p + "mlp.down_proj.weight", (D, M)),
            (p + "post_feedforward_layernorm.weight", (D,)),
        ]
    out.append(("model.norm.weight", (D,)))
    return out


def to_bf16_bits(x):
    """float32 array -> uint16 bfloat16 bit patterns, rounded to nearest even (as torch does)."""
    u = x.view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def write_shard(path, entries, dtype, rng):
    """Writes one safetensors file holding `entries` [(name, shape)], data streamed chunk by chunk."""
    item = 2 if dtype == "bf16" else 4
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, shape in entries:
        n = int(np.prod(shape)) * item
        header[name] = {"dtype": "BF16" if dtype == "bf16" else "F32", "shape": list(shape),
                        "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)  # data block 8-byte aligned, as safetensors writes it
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for name, shape in entries:
            scale = 0.1 if name.endswith("norm.weight") else 0.02
            left = int(np.prod(shape))
            while left > 0:
                n = min(left, CHUNK)
                x = rng.standard_normal(n, dtype=np.float32)
                x *= scale
                f.write((to_bf16_bits(x) if dtype == "bf16" else x).tobytes())
                left -= n
    return offset


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="folder to write (created)")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="2b")
    ap.add_argument("--dtype", choices=["bf16", "f32"], default="bf16")
    ap.add_argument("--shards", type=int, default=1, help="1: model.safetensors; N>1: an index and N shards")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.shards < 1:
        sys.exit("--shards must be at least 1")

    config = dict(BASE_CONFIG, **PRESETS[args.preset])
    config["torch_dtype"] = "bfloat16" if args.dtype == "bf16" else "float32"
    config = dict(sorted(config.items()))
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")

    all_tensors = tensors(config)
    item = 2 if args.dtype == "bf16" else 4
    sizes = [int(np.prod(s)) * item for _, s in all_tensors]
    total = sum(sizes)
    # Consecutive tensors into shards of about total/N bytes each (a tensor is never split).
    groups, current, acc = [], [], 0
    for (name, shape), n in zip(all_tensors, sizes):
        if current and acc + n / 2 > total * (len(groups) + 1) / args.shards and len(groups) < args.shards - 1:
            groups.append(current)
            current = []
        current.append((name, shape))
        acc += n
    groups.append(current)

    rng = np.random.default_rng(args.seed)
    if args.shards == 1:
        write_shard(os.path.join(args.out, "model.safetensors"), groups[0], args.dtype, rng)
    else:
        weight_map = {}
        for k, group in enumerate(groups):
            fname = f"model-{k + 1:05d}-of-{len(groups):05d}.safetensors"
            write_shard(os.path.join(args.out, fname), group, args.dtype, rng)
            weight_map.update({name: fname for name, _ in group})
            print(f"wrote {fname} ({len(group)} tensors)", file=sys.stderr)
        with open(os.path.join(args.out, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, f,
                      indent=2)
            f.write("\n")
    n_params = sum(int(np.prod(s)) for _, s in all_tensors)
    print(f"{args.out}: Gemma-2 {args.preset}, {n_params / 1e9:.3f} B parameters, {total / 1e9:.2f} GB {args.dtype}, "
          f"{len(groups)} file(s)", file=sys.stderr)


if __name__ == "__main__":
    main()

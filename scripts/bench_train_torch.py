#!/usr/bin/python3
"""bench_train_torch.py - PyTorch's training speed on the model `cgpt train`
trains, for `make bench-train` to set beside cgpt's own figure.

    /usr/bin/python3 scripts/bench_train_torch.py [--embd 256 --layers 6 --heads 8
        --kv-heads 4 --head-dim 32 --ff 688 --vocab 8192 --seq 256 --batch 8]
        [--steps 3 --reps 3 --warmup 2] [--threads 1,2] [--blas-threads N]

The same llama model as src/train/tmodel.h (RMSNorm, adjacent-pair RoPE,
GQA causal attention, SwiGLU, tied embeddings, mean cross-entropy), float32,
AdamW (lr 1e-3, wd 0.1 on matrices), gradient clipping at 1.0, written the
way a PyTorch user would write it for speed on the CPU: fused QKV and
gate/up projections, RoPE tables and the causal mask built once, the
attention as baddbmm (mask + scale * q k^T) + softmax + bmm
(F.scaled_dot_product_attention is not in torch 1.13), AdamW with
foreach=True. The BLAS (OpenBLAS under Debian's torch) is given the same
thread count as torch (blas_threads_setter).

For each thread count t (default 1..the CPUs this process may use):
torch.set_num_threads(t), --warmup steps, then --reps timings of --steps
steps; tokens/s = batch * seq * steps / seconds, best of the reps.
Prints one JSON line:
  {"torch_tokens_per_s": {"1": ..., "2": ...}, "best": ..., "best_threads": ...,
   "params": ..., "torch": "1.13...", "config": {...}}
"""

import argparse
import ctypes
import json
import math
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class Block(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.nh, self.nkv, self.hs = a.heads, a.kv_heads, a.head_dim
        self.attn_norm = RMSNorm(a.embd, a.eps)
        self.qkv = nn.Linear(a.embd, (a.heads + 2 * a.kv_heads) * a.head_dim, bias=False)
        self.wo = nn.Linear(a.heads * a.head_dim, a.embd, bias=False)
        self.ffn_norm = RMSNorm(a.embd, a.eps)
        self.gate_up = nn.Linear(a.embd, 2 * a.ff, bias=False)
        self.down = nn.Linear(a.ff, a.embd, bias=False)

    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        nh, nkv, hs = self.nh, self.nkv, self.hs
        q, k, v = self.qkv(self.attn_norm(x)).split([nh * hs, nkv * hs, nkv * hs], dim=-1)
        q = rope(q.view(B, T, nh, hs), cos, sin).transpose(1, 2)   # (B, NH, T, HS)
        k = rope(k.view(B, T, nkv, hs), cos, sin).transpose(1, 2)  # (B, NKV, T, HS)
        v = v.view(B, T, nkv, hs).transpose(1, 2)
        if nh != nkv:
            k = k.repeat_interleave(nh // nkv, dim=1)
            v = v.repeat_interleave(nh // nkv, dim=1)
        # scores = mask + scale * q k^T in one baddbmm (no separate scale and
        # mask passes over the (B, NH, T, T) scores, forward or backward)
        kt = k.reshape(B * nh, T, hs).transpose(1, 2)
        att = torch.baddbmm(mask, q.reshape(B * nh, T, hs), kt,
                            alpha=1.0 / math.sqrt(hs)).softmax(dim=-1)
        a = (att @ v.reshape(B * nh, T, hs)).view(B, nh, T, hs)
        x = x + self.wo(a.transpose(1, 2).reshape(B, T, nh * hs))
        g, u = self.gate_up(self.ffn_norm(x)).chunk(2, dim=-1)
        return x + self.down(F.silu(g) * u)


def rope(x, cos, sin):
    """Adjacent pairs (2i, 2i+1) of x (B, T, H, HS) rotated; cos/sin (T, 1, HS/2)."""
    # unbind (backward: stack) rather than strided slices (backward: a zeroed
    # full-size buffer per slice)
    a, b = x.unflatten(-1, (-1, 2)).unbind(-1)
    return torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2)


class Llama(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.embd = nn.Embedding(a.vocab, a.embd)
        self.blocks = nn.ModuleList(Block(a) for _ in range(a.layers))
        self.norm = RMSNorm(a.embd, a.eps)
        inv = a.rope_base ** (-torch.arange(0, a.head_dim, 2, dtype=torch.float64) / a.head_dim)
        ang = torch.arange(a.seq, dtype=torch.float64)[:, None] * inv[None, :]
        self.register_buffer("cos", torch.cos(ang).float()[:, None, :], persistent=False)
        self.register_buffer("sin", torch.sin(ang).float()[:, None, :], persistent=False)
        self.register_buffer("mask", torch.full((a.seq, a.seq), float("-inf")).triu(1),
                             persistent=False)
        std = 0.02
        for n, p in self.named_parameters():
            if p.dim() == 2:
                s = std / math.sqrt(2 * a.layers) if n.endswith(("wo.weight", "down.weight")) \
                    else std
                nn.init.normal_(p, 0.0, s)

    def forward(self, idx, targets):
        T = idx.shape[1]
        x = self.embd(idx)
        cos, sin, mask = self.cos[:T], self.sin[:T], self.mask[:T, :T]
        for blk in self.blocks:
            x = blk(x, cos, sin, mask)
        logits = self.norm(x) @ self.embd.weight.t()   # tied output projection
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1),
                               ignore_index=-1)


def blas_threads_setter():
    """torch.set_num_threads() sizes torch's OpenMP pool only. Debian's torch
    calls the system BLAS (BLAS_INFO=generic), which is OpenBLAS's pthread
    build when libopenblas is installed: left alone it runs its own pool of
    one thread per CPU next to torch's, oversubscribing the cores. Returns
    a function setting OpenBLAS's thread count (and the library's name), or
    (None, "other") when the loaded BLAS is not OpenBLAS."""
    for name in ("libopenblas.so.0", "libopenblas.so", "libblas.so.3"):
        try:
            lib = ctypes.CDLL(name)
            fn = lib.openblas_set_num_threads
        except (OSError, AttributeError):
            continue
        fn.argtypes = [ctypes.c_int]
        return fn, name
    return None, "other"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--embd", type=int, default=256)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--head-dim", type=int, default=0, help="default embd / heads")
    ap.add_argument("--ff", type=int, default=688)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3, help="steps per timing")
    ap.add_argument("--reps", type=int, default=3, help="timings per thread count (best wins)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps per thread count")
    ap.add_argument("--threads", default="", help="comma list; default 1..CPUs")
    ap.add_argument("--blas-threads", type=int, default=0,
                    help="OpenBLAS threads; 0 (default): the same as torch's")
    ap.add_argument("--rope-base", type=float, default=10000.0)
    ap.add_argument("--eps", type=float, default=1e-5)
    a = ap.parse_args()
    if a.head_dim == 0:
        a.head_dim = a.embd // a.heads
    if a.heads % a.kv_heads or a.head_dim % 2:
        ap.error("--kv-heads must divide --heads and the head dim be even")
    n_cpu = len(os.sched_getaffinity(0))
    threads = [int(t) for t in a.threads.split(",")] if a.threads else list(range(1, n_cpu + 1))

    torch.manual_seed(0)
    model = Llama(a)
    n_params = sum(p.numel() for p in model.parameters())
    decay = [p for p in model.parameters() if p.dim() == 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.95), eps=1e-8, foreach=True)
    g = torch.Generator().manual_seed(1)
    data = torch.randint(0, a.vocab, (a.batch, a.seq + 1), generator=g)
    idx, tgt = data[:, :-1].contiguous(), data[:, 1:].contiguous()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = model(idx, tgt)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss

    tokens_per_step = a.batch * a.seq
    set_blas, blas = blas_threads_setter()
    result = {}
    for t in threads:
        torch.set_num_threads(t)
        if set_blas:
            set_blas(a.blas_threads or t)
        for _ in range(a.warmup):
            step()
        best = 0.0
        for _ in range(a.reps):
            t0 = time.perf_counter()
            for _ in range(a.steps):
                loss = step()
            float(loss)
            dt = time.perf_counter() - t0
            best = max(best, tokens_per_step * a.steps / dt)
        result[str(t)] = round(best, 1)
    best_t = max(result, key=lambda k: result[k])
    print(json.dumps({
        "torch_tokens_per_s": result, "best": result[best_t], "best_threads": int(best_t),
        "params": n_params, "torch": torch.__version__, "blas": blas,
        "blas_threads": a.blas_threads or "same",
        "config": {k: getattr(a, k) for k in ("embd", "layers", "heads", "kv_heads", "head_dim",
                                              "ff", "vocab", "seq", "batch")}}))


if __name__ == "__main__":
    main()

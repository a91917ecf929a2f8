#!/usr/bin/python3
"""torch_ref.py - PyTorch oracle for the trainable GPT (src/train/tmodel.h).

Loss and gradients of a `llama` model with tied embeddings, computed by
torch autograd (python3-torch 1.13, CPU) in float64 (the oracle) or float32.
Written from the model definition (HF LlamaForCausalLM, llama.cpp rope type
0) and the contract in tmodel.h, not from cgpt's C code:

    x = tok_embd[token]
    per layer: h = rmsnorm(x) * attn_norm
               q, k, v = h Wq^T, h Wk^T, h Wv^T      (NH, NKV heads of HS)
               rope on q, k: ADJACENT pairs (2i, 2i+1), angle pos * base^(-2i/HS)
               causal softmax(q k^T / sqrt(HS)) v; query head h reads kv head h / (NH/NKV)
               x = x + attn Wo^T
               h = rmsnorm(x) * ffn_norm
               x = x + (silu(h Wg^T) * (h Wu^T)) Wd^T
    logits = rmsnorm(x) * output_norm  tok_embd^T
    loss_sum = sum over targets >= 0 of cross-entropy(logits, target)

Weights come from a GGUF file through tests/ref/gguf_np.py (F32 llama,
tied: no output.weight) or from a dict of arrays.

    m = TorchRef.from_gguf(path, dtype=torch.float64)
    r = m.loss_and_grads(tokens, targets, loss_scale)   # tokens/targets (B, T) ints
    r.loss_sum, r.n_targets, r.grads["blk.0.attn_q.weight"], r.logits
    m.layout()            -> [(name, rows, cols, offset)] in tmodel.h order
    m.flat_grads(r)       -> float64 vector in that order

Run directly for the self-check (float64): torch.autograd.gradcheck of the
loss against finite differences on tiny models, forward logits against
tests/ref/ref_model.py (an independent NumPy forward), the flat layout, and
the float32 mode against float64.

    /usr/bin/python3 tests/train/torch_ref.py [build/tools]
"""

import math
import os
import sys
from collections import namedtuple

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "ref"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import gguf_np  # noqa: E402

Config = namedtuple("Config", "n_vocab n_embd n_layers n_heads n_kv_heads head_dim n_ff "
                              "rope_base norm_eps")
Result = namedtuple("Result", "loss_sum n_targets grads logits")

LAYER_TENSORS = ("attn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
                 "ffn_norm", "ffn_gate", "ffn_up", "ffn_down")


def tensor_shapes(cfg):
    """[(name, rows, cols)] in the parameter-vector order of tmodel.h."""
    C, HS, F_ = cfg.n_embd, cfg.head_dim, cfg.n_ff
    q, kv = cfg.n_heads * HS, cfg.n_kv_heads * HS
    shape = {"attn_norm": (1, C), "attn_q": (q, C), "attn_k": (kv, C), "attn_v": (kv, C),
             "attn_output": (C, q), "ffn_norm": (1, C), "ffn_gate": (F_, C),
             "ffn_up": (F_, C), "ffn_down": (C, F_)}
    out = [("token_embd.weight", cfg.n_vocab, C)]
    for il in range(cfg.n_layers):
        for t in LAYER_TENSORS:
            out.append((f"blk.{il}.{t}.weight",) + shape[t])
    out.append(("output_norm.weight", 1, C))
    return out


def config_from_gguf(g):
    md = g.metadata
    if md.get("general.architecture") != "llama":
        raise ValueError(f"architecture {md.get('general.architecture')!r}, want 'llama'")
    C = int(md["llama.embedding_length"])
    NH = int(md["llama.attention.head_count"])
    HS = int(md.get("llama.attention.key_length", C // NH))
    cfg = Config(n_vocab=int(g.tensors["token_embd.weight"].ne[1]), n_embd=C,
                 n_layers=int(md["llama.block_count"]), n_heads=NH,
                 n_kv_heads=int(md.get("llama.attention.head_count_kv", NH)), head_dim=HS,
                 n_ff=int(md["llama.feed_forward_length"]),
                 rope_base=float(md.get("llama.rope.freq_base", 10000.0)),
                 norm_eps=float(md["llama.attention.layer_norm_rms_epsilon"]))
    if int(md.get("llama.rope.dimension_count", HS)) != HS:
        raise ValueError("partial rope (rope.dimension_count != head_dim) is not the tmodel math")
    for bad in ("output.weight", "rope_freqs.weight"):
        if bad in g.tensors:
            raise ValueError(f"{bad} present: tmodel is tied and has no rope scaling")
    return cfg


def rmsnorm(x, w, eps):
    return x * torch.rsqrt(torch.mean(x * x, dim=-1, keepdim=True) + eps) * w


def rope_tables(T, HS, base, dtype):
    """cos, sin of pos * base^(-2i/HS), (T, HS/2), computed in float64."""
    i = torch.arange(HS // 2, dtype=torch.float64)
    inv_freq = base ** (-2.0 * i / HS)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv_freq[None, :]
    return torch.cos(ang).to(dtype), torch.sin(ang).to(dtype)


def rope_adjacent(x, cos, sin):
    """x (B, T, H, HS): rotate pairs (x[2i], x[2i+1]) by the angle of i."""
    B, T, H, HS = x.shape
    xp = x.reshape(B, T, H, HS // 2, 2)
    a, b = xp[..., 0], xp[..., 1]
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    return torch.stack((a * c - b * s, a * s + b * c), dim=-1).reshape(B, T, H, HS)


class TorchRef:
    def __init__(self, cfg, weights, dtype=torch.float64):
        """weights: name -> array of shape (rows, cols) or (cols,) for norms."""
        if cfg.n_heads % cfg.n_kv_heads or cfg.head_dim % 2:
            raise ValueError("n_kv_heads must divide n_heads and head_dim be even")
        self.cfg = cfg
        self.dtype = dtype
        self.params = {}
        for name, rows, cols in tensor_shapes(cfg):
            a = np.asarray(weights[name])
            if a.size != rows * cols:
                raise ValueError(f"{name}: {a.shape}, want ({rows}, {cols})")
            shape = (cols,) if rows == 1 else (rows, cols)
            t = torch.tensor(a.reshape(shape), dtype=dtype)
            self.params[name] = t.requires_grad_(True)

    @classmethod
    def from_gguf(cls, path, dtype=torch.float64):
        g = gguf_np.load(path)
        try:
            cfg = config_from_gguf(g)
            w = {}
            for name, _, _ in tensor_shapes(cfg):
                if g.tensors[name].type != gguf_np.F32:
                    raise ValueError(f"{name}: type {gguf_np.type_name(g.tensors[name].type)}, "
                                     f"want F32")
                w[name] = g.tensor(name).copy()
            extra = set(g.tensors) - set(w)
            if extra:
                raise ValueError(f"tensors outside the tmodel layout: {sorted(extra)}")
        finally:
            g.close()
        return cls(cfg, w, dtype)

    def layout(self):
        out, off = [], 0
        for name, rows, cols in tensor_shapes(self.cfg):
            out.append((name, rows, cols, off))
            off += rows * cols
        return out

    def n_params(self):
        return sum(r * c for _, r, c in tensor_shapes(self.cfg))

    # -------------------------------------------------------------- forward
    def logits(self, tokens, p=None):
        """tokens (B, T) int64 tensor -> logits (B, T, V)."""
        cfg, p = self.cfg, (p or self.params)
        B, T = tokens.shape
        NH, NKV, HS, eps = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, cfg.norm_eps
        cos, sin = rope_tables(T, HS, cfg.rope_base, self.dtype)
        causal = torch.ones(T, T, dtype=torch.bool).triu(1)
        x = p["token_embd.weight"][tokens]                       # (B, T, C)
        for il in range(cfg.n_layers):
            w = lambda n: p[f"blk.{il}.{n}.weight"]  # noqa: E731
            h = rmsnorm(x, w("attn_norm"), eps)
            q = (h @ w("attn_q").t()).reshape(B, T, NH, HS)
            k = (h @ w("attn_k").t()).reshape(B, T, NKV, HS)
            v = (h @ w("attn_v").t()).reshape(B, T, NKV, HS)
            q, k = rope_adjacent(q, cos, sin), rope_adjacent(k, cos, sin)
            q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, H, T, HS)
            k = k.repeat_interleave(NH // NKV, dim=1)             # head h -> kv head h // group
            v = v.repeat_interleave(NH // NKV, dim=1)
            att = (q @ k.transpose(-1, -2)) / math.sqrt(HS)       # (B, NH, T, T)
            att = att.masked_fill(causal, float("-inf")).softmax(dim=-1)
            a = (att @ v).transpose(1, 2).reshape(B, T, NH * HS)
            x = x + a @ w("attn_output").t()
            h = rmsnorm(x, w("ffn_norm"), eps)
            x = x + (F.silu(h @ w("ffn_gate").t()) * (h @ w("ffn_up").t())) @ w("ffn_down").t()
        x = rmsnorm(x, p["output_norm.weight"], eps)
        return x @ p["token_embd.weight"].t()

    def loss(self, tokens, targets, p=None):
        """(loss_sum tensor, n_targets, logits); targets < 0 are ignored."""
        tokens = torch.as_tensor(np.asarray(tokens), dtype=torch.int64)
        targets = torch.as_tensor(np.asarray(targets), dtype=torch.int64)
        V = self.cfg.n_vocab
        if tokens.min() < 0 or tokens.max() >= V or targets.max() >= V:
            raise ValueError("token or target id out of range")
        lg = self.logits(tokens, p)
        tg = torch.where(targets < 0, torch.full_like(targets, -100), targets)
        loss_sum = F.cross_entropy(lg.reshape(-1, V), tg.reshape(-1), ignore_index=-100,
                                   reduction="sum")
        return loss_sum, int((targets >= 0).sum()), lg

    def loss_and_grads(self, tokens, targets, loss_scale=1.0):
        """Loss and d(loss_scale * loss_sum)/d(every parameter), as numpy
        arrays in the parameter's dtype, each shaped (rows, cols) or (cols,)."""
        names = list(self.params)
        loss_sum, n, lg = self.loss(tokens, targets)
        gr = torch.autograd.grad(loss_sum * loss_scale, [self.params[k] for k in names],
                                 allow_unused=True)
        grads = {}
        for k, gk in zip(names, gr):
            grads[k] = (torch.zeros_like(self.params[k]) if gk is None else gk).detach().numpy()
        return Result(float(loss_sum.detach()), n, grads, lg.detach().numpy())

    def flat(self, d):
        """Concatenate a name -> array dict in layout order (float64)."""
        return np.concatenate([np.asarray(d[n], np.float64).reshape(-1)
                               for n, _, _, _ in self.layout()])

    def flat_params(self):
        return self.flat({k: v.detach().numpy() for k, v in self.params.items()})


# ------------------------------------------------------------ self-check

def _rand_model(cfg, seed, std=0.3):
    rng = np.random.default_rng(seed)
    w = {}
    for name, rows, cols in tensor_shapes(cfg):
        if rows == 1:
            w[name] = 1.0 + 0.1 * rng.standard_normal(cols)
        else:
            w[name] = std * rng.standard_normal((rows, cols))
    return w


def _gradcheck(cfg, B, T, seed):
    """Analytic gradient of loss_sum vs central finite differences (float64)."""
    m = TorchRef(cfg, _rand_model(cfg, seed), torch.float64)
    rng = np.random.default_rng(seed + 1)
    tokens = rng.integers(0, cfg.n_vocab, (B, T))
    targets = rng.integers(0, cfg.n_vocab, (B, T))
    targets[rng.random((B, T)) < 0.3] = -1
    targets[0, 0] = 1
    names = list(m.params)

    def f(*ps):
        loss, _, _ = m.loss(tokens, targets, dict(zip(names, ps)))
        return loss

    ps = [m.params[k] for k in names]
    ok = torch.autograd.gradcheck(f, ps, eps=1e-6, atol=1e-7, rtol=1e-5)
    print(f"  gradcheck {cfg.n_heads}/{cfg.n_kv_heads} heads hs {cfg.head_dim} "
          f"B {B} T {T}: {'ok' if ok else 'FAIL'}")
    return ok


def _check_ref_model(tools, tmp):
    """Forward logits vs tests/ref/ref_model.py on genmodel files."""
    import subprocess
    from ref_model import RefModel
    ok = True
    genmodel = os.path.join(tools, "genmodel")
    for i, (V, C, L, NH, NKV, HS, F_) in enumerate([(300, 48, 2, 4, 2, 16, 80),
                                                    (517, 40, 1, 4, 1, 12, 64)]):
        path = os.path.join(tmp, f"sc{i}.gguf")
        subprocess.run([genmodel, "--arch", "llama", "--vocab", str(V), "--embd", str(C),
                        "--layers", str(L), "--heads", str(NH), "--kv-heads", str(NKV),
                        "--head-dim", str(HS), "--ff", str(F_), "--tied", "--std", "0.2",
                        "--seed", str(10 + i), "-o", path], check=True)
        m = TorchRef.from_gguf(path, torch.float64)
        ref = RefModel(gguf_np.load(path))
        rng = np.random.default_rng(i)
        tokens = rng.integers(0, V, (2, 11))
        lg = m.logits(torch.as_tensor(tokens)).detach().numpy()
        err = max(np.max(np.abs(lg[b] - ref.forward(tokens[b]))) for b in range(2))
        scale = np.max(np.abs(lg))
        good = err <= 1e-10 * scale
        ok &= good
        print(f"  logits vs ref_model.py ({path}): max err {err:.2e} (scale {scale:.2f}) "
              f"{'ok' if good else 'FAIL'}")
        # layout: offsets are the running sum of rows*cols in tmodel.h order
        lay = m.layout()
        good = lay[-1][3] + lay[-1][2] == m.n_params() == m.flat_params().size
        ok &= good
        print(f"  layout: {len(lay)} tensors, {m.n_params()} params {'ok' if good else 'FAIL'}")
        # float32 mode agrees with float64
        m32 = TorchRef.from_gguf(path, torch.float32)
        targets = rng.integers(-1, V, (2, 11))
        r64 = m.loss_and_grads(tokens, targets, 1.0 / max(1, (targets >= 0).sum()))
        r32 = m32.loss_and_grads(tokens, targets, 1.0 / max(1, (targets >= 0).sum()))
        gerr = max(np.max(np.abs(r64.grads[k] - r32.grads[k])) / np.max(np.abs(r64.grads[k]))
                   for k in r64.grads)
        lerr = abs(r32.loss_sum - r64.loss_sum) / abs(r64.loss_sum)
        good = gerr < 1e-4 and lerr < 1e-5
        ok &= good
        print(f"  float32 vs float64: loss rel {lerr:.2e}, worst grad rel {gerr:.2e} "
              f"{'ok' if good else 'FAIL'}")
    return ok


def main():
    torch.manual_seed(0)
    ok = True
    print("torch_ref self-check")
    for cfg, B, T in [
        (Config(23, 8, 1, 2, 1, 4, 12, 10000.0, 1e-5), 2, 5),
        (Config(17, 6, 2, 4, 2, 2, 10, 100.0, 1e-5), 1, 7),
        (Config(19, 10, 1, 2, 2, 6, 8, 10000.0, 1e-5), 3, 3),
    ]:
        ok &= _gradcheck(cfg, B, T, seed=cfg.n_vocab)
    tools = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "build", "tools")
    if os.path.exists(os.path.join(tools, "genmodel")):
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            ok &= _check_ref_model(tools, tmp)
    else:
        print(f"  (no {tools}/genmodel: skipped the checks against ref_model.py)")
    print("torch_ref self-check: " + ("ok" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
